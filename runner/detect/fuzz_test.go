package detect

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Every parser must accept any bytes: no panic, no hang, and results that
// stay inside their domain. Seeds are the corpus files plus known-awkward input.

// seedFiles adds every corpus file with one of the given names as a seed.
func seedFiles(f *testing.F, names ...string) {
	for _, name := range names {
		matches, _ := filepath.Glob(filepath.Join("testdata", "apps", "*", name))
		nested, _ := filepath.Glob(filepath.Join("testdata", "apps", "*", "*", name))
		deeper, _ := filepath.Glob(filepath.Join("testdata", "apps", "*", "*", "*", name))
		for _, m := range append(append(matches, nested...), deeper...) {
			if data, err := os.ReadFile(m); err == nil {
				f.Add(data)
			}
		}
	}
}

func FuzzParsePackageJSON(f *testing.F) {
	seedFiles(f, "package.json")
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"workspaces": {"packages": ["a/*"]}}`, `{"dependencies": {"next": 1}}`,
		"\xef\xbb\xbf{\"name\": \"bom\"}", `{"scripts": {"start": "next start -p 99999"}}`, `{"a": ` + `[[[[[[[[[[` + `}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePackageJSON(data)
		if err != nil {
			return
		}
		nodeFramework(p, false)
		_ = usesWorkspaceProtocol(p)
	})
}

func FuzzParsePyproject(f *testing.F) {
	seedFiles(f, "pyproject.toml")
	f.Add([]byte("[project]\ndependencies = [1, \"x\"]\n[tool.poetry.dependencies]\npython = 3\n"))
	f.Add([]byte("a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parsePyproject(data)
	})
}

func FuzzParsePipfile(f *testing.F) {
	seedFiles(f, "Pipfile")
	f.Add([]byte("[packages]\nflask = {version = \"*\"}\n[requires]\npython_version = 3.12\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parsePipfile(data)
	})
}

func FuzzParseRequirements(f *testing.F) {
	seedFiles(f, "requirements.txt", "base.txt")
	f.Add([]byte("-r\n--requirement=x.txt\n-e git+https://x/y.git#egg=Foo_Bar\npkg @ https://x/p.whl\n\\\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		names, _ := parseRequirements(data)
		for _, n := range names {
			if n == "" {
				t.Fatal("empty package name")
			}
		}
	})
}

func FuzzParseGemfile(f *testing.F) {
	seedFiles(f, "Gemfile", "Gemfile.lock")
	f.Add([]byte("gem('rails')\nruby '3.3.0'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseGemfile(data, data)
	})
}

func FuzzParseComposerJSON(f *testing.F) {
	seedFiles(f, "composer.json")
	f.Add([]byte(`{"require": {"php": 8}, "require-dev": []}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseComposerJSON(data)
	})
}

func FuzzParseGoMod(f *testing.F) {
	seedFiles(f, "go.mod")
	f.Add([]byte("module x\nrequire (\n\t\"a\" v1\n)\nrequire\ngo\ntoolchain\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := parseGoMod(data)
		goFramework(m.requires)
	})
}

func FuzzParseCargoToml(f *testing.F) {
	seedFiles(f, "Cargo.toml", "rust-toolchain.toml")
	f.Add([]byte("[workspace]\nmembers = [\"a\", 1]\n[dependencies]\naxum = { version = \"0.7\" }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseCargoToml(data)
	})
}

func FuzzParseDockerfile(f *testing.F) {
	seedFiles(f, "Dockerfile")
	for _, s := range []string{"FROM a AS b\nFROM b AS a\nFROM a\n", "FROM x\nENV A=$A$A\nENV A=$A$A\nEXPOSE ${A}\n",
		"# escape=`\nFROM x\nCMD a `\n b\n", "FROM x\nRUN <<\n", "FROM x\nEXPOSE ${\n", "FROM x\nCMD [\"a\", 1]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info := parseDockerfile(data)
		if info.expose < 0 || info.expose > 65535 || info.envPORT < 0 || info.envPORT > 65535 {
			t.Fatalf("port out of range: %+v", info)
		}
	})
}

func FuzzParsePnpmWorkspace(f *testing.F) {
	seedFiles(f, "pnpm-workspace.yaml")
	f.Add([]byte("packages: [\n"))
	f.Add([]byte("packages:\n-\n- ''\n- \"#\" # x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parsePnpmWorkspace(data)
	})
}

func FuzzParseProcfile(f *testing.F) {
	seedFiles(f, "Procfile")
	f.Add([]byte("web:\n: x\nweb gunicorn\nworker: celery\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, cmd := range parseProcfile(data) {
			if name == "" || cmd == "" {
				t.Fatalf("empty entry %q: %q", name, cmd)
			}
		}
	})
}

func FuzzParseMixExs(f *testing.F) {
	seedFiles(f, "mix.exs")
	f.Fuzz(func(t *testing.T, data []byte) {
		parseMixExs(data)
	})
}

func FuzzParseDenoJSON(f *testing.F) {
	seedFiles(f, "deno.json")
	for _, s := range []string{"{\n // c\n \"tasks\": {\"start\": \"deno run main.ts\",},\n}", "/* x", `{"a": "//not a comment"}`, `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseDenoJSON(data)
	})
}

func FuzzParseToolVersions(f *testing.F) {
	seedFiles(f, ".tool-versions")
	f.Fuzz(func(t *testing.T, data []byte) {
		parseToolVersions(data)
	})
}

func FuzzAnalyzeCommand(f *testing.F) {
	for _, s := range []string{"next start -p 4000", "gunicorn -b :$PORT app:app", "sh -c 'sh -c \"npm start\"'", "npm run a",
		"PORT= x", "--port", "-p", "${PORT:-", "serve -l tcp://[::]:", "python -m", "npx", "a && && ||", "'unterminated", "\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		d := &detection{scripts: map[string]string{"a": "npm run b && npm run a", "b": "next start", "start": "npm run a"}}
		l := d.analyzeCommand(cmd, "fuzz")
		if l.port < 0 || l.port > 65535 {
			t.Fatalf("port out of range: %+v", l)
		}
	})
}

func FuzzScanSource(f *testing.F) {
	seedFiles(f, "server.js", "main.go", "main.py", "main.rs", "index.js", "app.py", "main.ts")
	f.Fuzz(func(t *testing.T, data []byte) {
		l, _ := scanSource("f", data)
		if l.port < 0 || l.port > 65535 {
			t.Fatalf("port out of range: %+v", l)
		}
	})
}

func FuzzRefineWithNixpacksPlan(f *testing.F) {
	for _, s := range []string{`{"providers":["node"],"variables":{"PORT":"3000"},"start":{"cmd":"npm start"}}`,
		`{"variables":{"PORT":3000}}`, `{"phases":{"start":{"cmd":"x --port 9"}}}`, `{"start":null}`, `{"variables":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, plan []byte) {
		got := RefineWithNixpacksPlan(Result{Framework: "go", Reasons: []string{}}, plan)
		if got.Framework != "go" {
			t.Fatalf("framework changed to %q", got.Framework)
		}
		if got.Port != nil && (*got.Port < 1 || *got.Port > 65535) {
			t.Fatalf("port out of range: %d", *got.Port)
		}
	})
}

// FuzzDetectPackageJSON runs the whole of Detect over a fuzzed package.json
// beside a fuzzed Procfile.
func FuzzDetectPackageJSON(f *testing.F) {
	f.Add([]byte(`{"scripts":{"start":"next start"},"dependencies":{"next":"1"},"workspaces":["*"]}`), []byte("web: npm start"))
	f.Add([]byte(`{"main":"../../etc/passwd","scripts":{"start":"node /etc/passwd"}}`), []byte("web: node ../x.js"))
	f.Fuzz(func(t *testing.T, pkg, procfile []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "package.json"), pkg, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Procfile"), procfile, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Detect(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if r.Framework == "" || r.Reasons == nil {
			t.Fatalf("incomplete result: %+v", r)
		}
	})
}
