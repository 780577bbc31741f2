package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// safeParse runs a parser and turns a panic into an error: detection must
// never take the build down, whatever a manifest holds or a parser does with it.
func safeParse[T any](parse func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, fmt.Errorf("unparseable (%v)", r)
		}
	}()
	return parse()
}

// maxNesting bounds brackets in TOML input: real manifests nest a few levels,
// and the TOML decoder recurses once per level.
const maxNesting = 64

// decodeTOML decodes data into a generic map.
func decodeTOML(data []byte) (map[string]any, error) {
	if tooDeep(data) {
		return nil, errors.New("nested too deeply")
	}
	return safeParse(func() (map[string]any, error) {
		m := map[string]any{}
		if _, err := toml.Decode(string(bytes.TrimPrefix(data, utf8BOM)), &m); err != nil {
			var pe toml.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("invalid TOML at line %d", pe.Position.Line)
			}
			return nil, errors.New("invalid TOML")
		}
		return m, nil
	})
}

// tooDeep counts bracket depth outside one-line strings. It over-counts only
// in multi-line strings, which can reject an absurd file but never let a
// deeply nested one through.
func tooDeep(data []byte) bool {
	depth := 0
	var quote byte
	for i := 0; i < len(data); i++ {
		b := data[i]
		switch {
		case b == '\n':
			quote = 0
		case quote != 0:
			if b == '\\' && quote == '"' {
				i++
			} else if b == quote {
				quote = 0
			}
		case b == '"' || b == '\'':
			quote = b
		case b == '[' || b == '{':
			depth++
			if depth > maxNesting {
				return true
			}
		case b == ']' || b == '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return false
}

// decodeJSONObject decodes a JSON object into a generic map.
func decodeJSONObject(data []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimPrefix(data, utf8BOM), &m); err != nil {
		return nil, jsonError(err)
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// tomlTable walks dotted keys ("tool", "poetry", "dependencies") down a decoded TOML document.
func tomlTable(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

func tomlString(m map[string]any, keys ...string) string {
	if len(keys) == 0 || m == nil {
		return ""
	}
	t := tomlTable(m, keys[:len(keys)-1]...)
	if t == nil {
		return ""
	}
	s, _ := t[keys[len(keys)-1]].(string)
	return s
}

// anyStrings keeps the strings of a decoded TOML or JSON array.
func anyStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// stripJSONComments removes // and /* */ comments and trailing commas outside
// strings, turning deno.jsonc (and tsconfig-style JSON) into JSON.
func stripJSONComments(data []byte) []byte {
	out := make([]byte, 0, len(data))
	inStr := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inStr {
			out = append(out, c)
			if c == '\\' && i+1 < len(data) {
				i++
				out = append(out, data[i])
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
			out = append(out, c)
		case c == '/' && i+1 < len(data) && data[i+1] == '/':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			if i < len(data) {
				out = append(out, '\n')
			}
		case c == '/' && i+1 < len(data) && data[i+1] == '*':
			i += 2
			for i+1 < len(data) && !(data[i] == '*' && data[i+1] == '/') {
				i++
			}
			i++
		case c == ']' || c == '}':
			// Drop a trailing comma before the closer.
			j := len(out) - 1
			for j >= 0 && (out[j] == ' ' || out[j] == '\t' || out[j] == '\n' || out[j] == '\r') {
				j--
			}
			if j >= 0 && out[j] == ',' {
				out = append(out[:j], out[j+1:]...)
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// parseProcfile reads "name: command" lines.
func parseProcfile(data []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		if !ok || name == "" || cmd == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		if _, dup := out[name]; !dup {
			out[name] = cmd
		}
	}
	return out
}

// parseToolVersions reads asdf/mise's .tool-versions: "nodejs 20.11.0".
func parseToolVersions(data []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) >= 2 && len(f[1]) <= 64 {
			if _, dup := out[f[0]]; !dup {
				out[f[0]] = f[1]
			}
		}
	}
	return out
}

func (d *detection) toolVersions() map[string]string {
	if d.tools == nil {
		d.tools = map[string]string{}
		if data, ok := d.t.manifest(".tool-versions"); ok {
			d.tools = parseToolVersions(data)
		}
	}
	return d.tools
}

// nixpacksConfig is the part of nixpacks.toml/nixpacks.json detection uses.
type nixpacksConfig struct {
	startCmd string
}

func parseNixpacksConfig(name string, data []byte) (nixpacksConfig, error) {
	var m map[string]any
	var err error
	if strings.HasSuffix(name, ".json") {
		m, err = decodeJSONObject(data)
	} else {
		m, err = decodeTOML(data)
	}
	if err != nil {
		return nixpacksConfig{}, err
	}
	var cfg nixpacksConfig
	if start, ok := m["start"].(map[string]any); ok {
		cfg.startCmd, _ = start["cmd"].(string)
	}
	return cfg, nil
}
