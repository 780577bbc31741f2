package detect

import (
	"encoding/json"
	"fmt"
	"strings"
)

// dockerfileInfo is what the final stage of a Dockerfile says about how the
// image listens.
type dockerfileInfo struct {
	expose    int   // first TCP port exposed; 0 when none
	exposeAll []int // every TCP port exposed, in order
	envPORT   int   // ENV PORT, 0 when unset
	cmd       string
	cmdKind   string // "CMD" or "ENTRYPOINT"
	stages    int
}

type dockerStage struct {
	name, from string
	parent     *dockerStage // the earlier stage this one is built FROM
	env        map[string]string
	expose     []int
	cmd, entry string
	hasCmd     bool
	hasEntry   bool
}

// maxHeredocLines bounds a heredoc body we skip.
const maxHeredocLines = 10000

// parseDockerfile reads the instructions that matter for the port. Unknown
// or broken lines are skipped: BuildKit will report those when it builds.
func parseDockerfile(data []byte) dockerfileInfo {
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	escape := byte('\\')
	// Parser directives come first, as comments.
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "#") {
			break
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "#")), "="); ok && strings.EqualFold(strings.TrimSpace(k), "escape") {
			if v = strings.TrimSpace(v); v == "`" {
				escape = '`'
			}
		}
	}

	var stages []*dockerStage
	var cur *dockerStage
	byName := map[string]*dockerStage{}
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || line[0] == '#' {
			continue
		}
		// Join continuation lines; comment and empty lines inside them are
		// dropped, as Docker does.
		if strings.HasSuffix(line, string(escape)) {
			var joined strings.Builder
			for strings.HasSuffix(line, string(escape)) && i+1 < len(lines) {
				joined.WriteString(strings.TrimRight(strings.TrimSuffix(line, string(escape)), " \t"))
				joined.WriteByte(' ')
				i++
				line = strings.TrimSpace(lines[i])
				for (line == "" || line[0] == '#') && i+1 < len(lines) {
					i++
					line = strings.TrimSpace(lines[i])
				}
				if line != "" && line[0] == '#' {
					line = ""
				}
			}
			joined.WriteString(line)
			line = strings.TrimSpace(joined.String())
		}
		instr, args, _ := strings.Cut(line, " ")
		instr = strings.ToUpper(instr)
		args = strings.TrimSpace(args)
		// Heredocs: RUN <<EOF ... EOF. Skip the body.
		if j := strings.Index(args, "<<"); j >= 0 && (instr == "RUN" || instr == "COPY" || instr == "ADD") {
			word := strings.Fields(args[j+2:])
			if len(word) > 0 {
				marker := strings.Trim(strings.TrimPrefix(word[0], "-"), `"'`)
				for n := 0; i+1 < len(lines) && n < maxHeredocLines; n++ {
					i++
					if strings.TrimSpace(lines[i]) == marker {
						break
					}
				}
			}
			continue
		}
		if instr == "FROM" {
			f := strings.Fields(args)
			st := &dockerStage{env: map[string]string{}}
			for k := 0; k < len(f); k++ {
				if strings.HasPrefix(f[k], "--") {
					continue
				}
				if st.from == "" {
					st.from = f[k]
				} else if strings.EqualFold(f[k], "AS") && k+1 < len(f) {
					st.name = strings.ToLower(f[k+1])
					break
				}
			}
			st.parent = byName[strings.ToLower(st.from)]
			if st.name != "" {
				byName[st.name] = st
			}
			stages = append(stages, st)
			cur = st
			continue
		}
		if cur == nil {
			continue
		}
		switch instr {
		case "ENV":
			// Docker substitutes variables in ENV values with the values from
			// before this instruction.
			pairs := parseEnvArgs(args)
			for i, kv := range pairs {
				pairs[i][1] = expandVars(kv[1], func(name string) string { return lookupEnv(cur, name) })
			}
			for _, kv := range pairs {
				cur.env[kv[0]] = kv[1]
			}
		case "ARG":
			for _, a := range strings.Fields(args) {
				if k, v, ok := strings.Cut(a, "="); ok {
					if _, set := cur.env[k]; !set {
						cur.env[k] = expandVars(strings.Trim(v, `"'`), func(name string) string { return lookupEnv(cur, name) })
					}
				}
			}
		case "EXPOSE":
			for _, a := range strings.Fields(args) {
				a = expandVars(a, func(k string) string { return lookupEnv(cur, k) })
				port, proto, _ := strings.Cut(a, "/")
				port, _, _ = strings.Cut(port, "-")
				if strings.EqualFold(proto, "udp") {
					continue
				}
				if p, ok := parsePort(port); ok {
					cur.expose = append(cur.expose, p)
				}
			}
		case "CMD":
			cur.cmd, cur.hasCmd = commandLine(args), true
		case "ENTRYPOINT":
			cur.entry, cur.hasEntry = commandLine(args), true
		}
	}

	info := dockerfileInfo{stages: len(stages)}
	if len(stages) == 0 {
		return info
	}
	final := stages[len(stages)-1]
	chain := stageChain(final)
	for _, st := range chain {
		if info.exposeAll == nil && len(st.expose) > 0 {
			info.exposeAll = st.expose
			info.expose = st.expose[0]
		}
		if info.cmdKind == "" && (st.hasCmd || st.hasEntry) {
			switch {
			case st.hasEntry && st.hasCmd:
				info.cmd, info.cmdKind = strings.TrimSpace(st.entry+" "+st.cmd), "ENTRYPOINT"
			case st.hasEntry:
				info.cmd, info.cmdKind = st.entry, "ENTRYPOINT"
			default:
				info.cmd, info.cmdKind = st.cmd, "CMD"
			}
		}
	}
	if p, ok := parsePort(lookupEnv(final, "PORT")); ok {
		info.envPORT = p
	}
	return info
}

// maxStageDepth bounds a chain of stages built FROM one another.
const maxStageDepth = 64

// stageChain is st and the earlier stages it is built FROM, nearest first.
func stageChain(st *dockerStage) []*dockerStage {
	var chain []*dockerStage
	for ; st != nil && len(chain) < maxStageDepth; st = st.parent {
		chain = append(chain, st)
	}
	return chain
}

func lookupEnv(st *dockerStage, key string) string {
	for n := 0; st != nil && n < maxStageDepth; st, n = st.parent, n+1 {
		if v, ok := st.env[key]; ok {
			return v
		}
	}
	return ""
}

// parseEnvArgs reads both ENV forms, in order: "K=V K2='v 2'" and the legacy "K V".
func parseEnvArgs(args string) [][2]string {
	words := splitWords(args)
	if len(words) == 0 {
		return nil
	}
	if !strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(args, " ")
		return [][2]string{{k, strings.TrimSpace(v)}}
	}
	var out [][2]string
	for _, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok && k != "" {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

// splitWords splits on spaces outside quotes and removes the quotes.
func splitWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, c := range s {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// maxExpanded caps a substituted value: ENV A=$A$A repeated would otherwise
// double it on every line.
const maxExpanded = 4096

// expandVars substitutes $VAR, ${VAR} and ${VAR:-default}.
func expandVars(s string, get func(string) string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() <= maxExpanded; i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				b.WriteString(s[i:])
				break
			}
			expr := s[i+2 : i+end]
			name, def := expr, ""
			if j := strings.Index(expr, ":-"); j >= 0 {
				name, def = expr[:j], expr[j+2:]
			} else if j := strings.Index(expr, "-"); j >= 0 {
				name, def = expr[:j], expr[j+1:]
			}
			if v := get(name); v != "" {
				b.WriteString(v)
			} else {
				b.WriteString(def)
			}
			i += end
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || j > i+1 && s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i+1 {
			b.WriteByte('$')
			continue
		}
		b.WriteString(get(s[i+1 : j]))
		i = j - 1
	}
	return b.String()
}

// commandLine turns CMD/ENTRYPOINT arguments into one shell-like line; the
// exec form's elements are quoted so the start analyser splits them back.
func commandLine(args string) string {
	if strings.HasPrefix(args, "[") {
		var argv []string
		if json.Unmarshal([]byte(args), &argv) == nil {
			for i, a := range argv {
				if a == "" || strings.ContainsAny(a, " \t'\"&|;") {
					argv[i] = "'" + strings.ReplaceAll(a, "'", `'"'"'`) + "'"
				}
			}
			return strings.Join(argv, " ")
		}
	}
	return args
}

// dockerfile reads ./Dockerfile, which the runner builds with when present.
func (d *detection) dockerfile() *dockerfileInfo {
	data, ok := d.t.manifest("Dockerfile")
	if !ok {
		return nil
	}
	info, err := safeParse(func() (dockerfileInfo, error) { return parseDockerfile(data), nil })
	if err != nil {
		d.addf("Dockerfile: %v", err)
		return &dockerfileInfo{}
	}
	r := "Dockerfile present: the runner builds with it"
	if info.stages == 0 {
		r += " (it has no FROM: the build will fail)"
	}
	d.addf("%s", r)
	if len(info.exposeAll) > 1 {
		d.addf("Dockerfile EXPOSEs %s: the first is taken", joinFirst(intStrings(info.exposeAll), 5))
	}
	return &info
}

func intStrings(ns []int) []string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return s
}
