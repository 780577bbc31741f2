package detect

import "testing"

func TestParseDockerfile(t *testing.T) {
	cases := []struct {
		name, src string
		expose    int
		envPORT   int
		cmd       string
	}{
		{"plain", "FROM node:20\nEXPOSE 3000\nCMD [\"node\", \"server.js\"]\n", 3000, 0, "node server.js"},
		{"protocol and udp", "FROM x\nEXPOSE 53/udp 8080/tcp\n", 8080, 0, ""},
		{"variable", "FROM x\nARG APP_PORT=7000\nENV PORT=$APP_PORT\nEXPOSE ${PORT}\n", 7000, 7000, ""},
		{"default in braces", "FROM x\nEXPOSE ${NOPE:-6000}\n", 6000, 0, ""},
		{"legacy ENV form", "FROM x\nENV PORT 5000\n", 0, 5000, ""},
		{"continuation and comments", "FROM x\nENV A=1 \\\n# a comment inside\n    PORT=4000\nCMD gunicorn app:app \\\n  --bind 0.0.0.0:4000\n", 0, 4000, "gunicorn app:app --bind 0.0.0.0:4000"},
		{"only the final stage counts", "FROM golang AS build\nEXPOSE 1111\nCMD [\"go\", \"run\"]\n\nFROM alpine\nCMD [\"/app\"]\n", 0, 0, "/app"},
		{"stages inherit from named stages", "FROM node AS base\nENV PORT=3100\nEXPOSE 3100\n\nFROM base AS prod\nCMD npm start\n", 3100, 3100, "npm start"},
		{"entrypoint and cmd", "FROM x\nENTRYPOINT [\"uvicorn\"]\nCMD [\"main:app\", \"--port\", \"80\"]\n", 0, 0, "uvicorn main:app --port 80"},
		{"exec form keeps words", "FROM x\nCMD [\"sh\", \"-c\", \"npm run start\"]\n", 0, 0, "sh -c 'npm run start'"},
		{"heredoc body is skipped", "FROM x\nRUN <<EOF\nEXPOSE 1\nEOF\nEXPOSE 2000\n", 2000, 0, ""},
		{"lower-case instructions", "from x\nexpose 4444\n", 4444, 0, ""},
		{"no FROM", "EXPOSE 80\n", 0, 0, ""},
	}
	for _, c := range cases {
		info := parseDockerfile([]byte(c.src))
		if info.expose != c.expose || info.envPORT != c.envPORT || info.cmd != c.cmd {
			t.Errorf("%s: expose %d envPORT %d cmd %q; want %d %d %q", c.name, info.expose, info.envPORT, info.cmd, c.expose, c.envPORT, c.cmd)
		}
	}
}

func TestParsePnpmWorkspace(t *testing.T) {
	cases := map[string][]string{
		"packages:\n  - 'apps/*'\n  - \"packages/*\" # shared\n  - tools/cli\n\ncatalog:\n  react: ^18\n": {"apps/*", "packages/*", "tools/cli"},
		"packages:\n- apps/*\n- '!**/test/**'\n":                                                          {"apps/*", "!**/test/**"},
		"packages: ['apps/*', \"libs/*\"]\n":                                                              {"apps/*", "libs/*"},
		"packages: [\n  'apps/*',\n  'libs/*',\n]\n":                                                      {"apps/*", "libs/*"},
		"# comment\nonlyBuiltDependencies:\n  - esbuild\n":                                                nil,
		"packages:\n  # comment line\n  - a/*\nonlyBuiltDependencies:\n  - x\n":                           {"a/*"},
	}
	for src, want := range cases {
		got := parsePnpmWorkspace([]byte(src))
		if len(got) != len(want) {
			t.Errorf("%q: got %q, want %q", src, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%q: got %q, want %q", src, got, want)
			}
		}
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		glob, dir string
		want      bool
	}{
		{"**/test/**", "packages/a/test/x", true},
		{"**/test/**", "packages/test", true},
		{"apps/*", "apps/web", true},
		{"apps/*", "apps/web/x", false},
		{"**/**/**/x", "a/b/x", true},
	}
	for _, c := range cases {
		if got := matchesAny(c.dir, []string{c.glob}); got != c.want {
			t.Errorf("matchesAny(%q, %q) = %v, want %v", c.dir, c.glob, got, c.want)
		}
	}
}
