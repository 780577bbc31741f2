package detect

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// serverTool is a server CLI whose port behaviour we know.
type serverTool struct {
	name string
	// subs are the sub-commands that start this server; "" stands for none.
	// nil means any next word (it is an argument, not a sub-command).
	subs      []string
	port      int
	readsPORT bool
	label     string
}

// serverTools lists start commands and the port each listens on by itself.
// Each line's comment says why; "reads PORT" means $PORT overrides the default.
var serverTools = []serverTool{
	{"next", []string{"start", "dev", ""}, 3000, true, "next start"},        // next start: -p, else $PORT, else 3000
	{"nuxt", []string{"start", "preview", "dev", ""}, 3000, true, "nuxt"},   // Nitro's node server: $NITRO_PORT/$PORT, else 3000
	{"nuxi", []string{"start", "preview", "dev", ""}, 3000, true, "nuxi"},   // same server as nuxt
	{"remix-serve", nil, 3000, true, "remix-serve"},                         // @remix-run/serve: $PORT, else 3000
	{"react-router-serve", nil, 3000, true, "react-router-serve"},           // @react-router/serve: $PORT, else 3000
	{"astro", []string{"preview", "dev", ""}, 4321, false, "astro preview"}, // Astro's Vite-based server: server.port/--port, else 4321
	{"vite", []string{"preview"}, 4173, false, "vite preview"},              // Vite ignores $PORT: preview.port/--port, else 4173
	{"vite", []string{"", "dev", "serve"}, 5173, false, "vite dev server"},  // Vite ignores $PORT: server.port/--port, else 5173
	{"svelte-kit", []string{"preview"}, 4173, false, "svelte-kit preview"},  // old SvelteKit CLI wraps vite preview
	{"serve", nil, 3000, true, "serve"},                                     // vercel/serve: --listen, else $PORT, else 3000
	{"http-server", nil, 8080, true, "http-server"},                         // http-server: -p, else $PORT, else 8080
	{"react-scripts", []string{"start"}, 3000, true, "react-scripts start"}, // CRA dev server: $PORT, else 3000
	{"ng", []string{"serve"}, 4200, false, "ng serve"},                      // Angular CLI ignores $PORT: --port, else 4200
	{"gatsby", []string{"serve"}, 9000, false, "gatsby serve"},              // gatsby serve: -p, else 9000
	{"gatsby", []string{"develop"}, 8000, false, "gatsby develop"},          // gatsby develop: -p, else 8000
	{"gunicorn", nil, 8000, true, "gunicorn"},                               // gunicorn binds 0.0.0.0:$PORT when PORT is set, else 127.0.0.1:8000
	{"uvicorn", nil, 8000, false, "uvicorn"},                                // uvicorn reads $UVICORN_PORT, not $PORT: --port, else 8000
	{"hypercorn", nil, 8000, false, "hypercorn"},                            // hypercorn: --bind, else 127.0.0.1:8000
	{"daphne", nil, 8000, false, "daphne"},                                  // daphne: -p, else 8000
	{"waitress-serve", nil, 8080, false, "waitress-serve"},                  // waitress: --port/--listen, else 8080
	{"flask", []string{"run"}, 5000, false, "flask run"},                    // flask reads $FLASK_RUN_PORT, not $PORT: else 5000
	{"fastapi", []string{"run", "dev"}, 8000, false, "fastapi run"},         // fastapi-cli: --port, else 8000
	{"streamlit", []string{"run"}, 8501, false, "streamlit run"},            // streamlit: --server.port, else 8501
	{"http.server", nil, 8000, false, "python -m http.server"},              // positional port, else 8000
	{"rails", []string{"server", "s"}, 3000, true, "rails server"},          // rails server: -p, else $PORT, else 3000
	{"rackup", nil, 9292, false, "rackup"},                                  // rackup: -p, else 9292
	{"puma", nil, 9292, false, "puma"},                                      // puma without config: -p/-b, else 9292
	{"thin", []string{"start"}, 3000, false, "thin start"},                  // thin: -p, else 3000
	{"unicorn", nil, 8080, false, "unicorn"},                                // unicorn: -p/-l, else 8080
	{"mix", []string{"phx.server"}, 4000, true, "mix phx.server"},           // Phoenix's generated runtime.exs reads $PORT, else 4000
	{"deno", []string{"serve"}, 8000, false, "deno serve"},                  // deno serve: --port, else 8000
	{"php", []string{"artisan"}, 8000, false, "php artisan serve"},          // artisan serve reads $SERVER_PORT, not $PORT: --port, else 8000
	{"wrangler", []string{"dev"}, 8787, false, "wrangler dev"},              // wrangler dev: --port, else 8787
	{"nginx", nil, 80, false, "nginx"},                                      // stock nginx configs listen on 80
	{"caddy", []string{"file-server"}, 80, false, "caddy file-server"},      // caddy file-server: --listen, else :80
	{"static-web-server", nil, 80, false, "static-web-server"},              // static-web-server: -p, else 80
}

// scriptRunners run a file whose code decides the port.
var scriptRunners = map[string]bool{
	"node": true, "nodemon": true, "ts-node": true, "ts-node-dev": true, "tsx": true,
	"babel-node": true, "bun": true, "deno": true, "python": true, "python3": true,
	"ruby": true, "esno": true, "jiti": true,
}

// wrappers run the rest of the command line.
var wrappers = map[string]bool{
	"exec": true, "env": true, "time": true, "nohup": true, "npx": true, "bunx": true,
	"pnpx": true, "cross-env": true, "dotenv": true, "dumb-init": true, "tini": true,
	"newrelic-admin": true, "ddtrace-run": true, "opentelemetry-instrument": true, "--": true,
}

// runWrappers are "<tool> run|exec <command>" forms.
var runWrappers = map[string][]string{
	"bundle": {"exec"}, "poetry": {"run"}, "uv": {"run"}, "pipenv": {"run"}, "pdm": {"run"},
	"rye": {"run"}, "hatch": {"run"}, "pnpm": {"exec", "dlx"}, "yarn": {"dlx", "exec"},
	"npm": {"exec"}, "doppler": {"run"}, "infisical": {"run"}, "op": {"run"},
}

// analyzeCommand says how the command line cmd picks its port; origin names
// where cmd came from ("Procfile web") for PortSource. Only the last segment
// that says anything counts: "migrate && gunicorn app" is about gunicorn.
func (d *detection) analyzeCommand(cmd, origin string) listen {
	d.steps = maxCommandSteps
	return d.analyzeCommandDepth(cmd, origin, 0)
}

// maxCommandSteps bounds the simple commands looked at for one start command:
// scripts calling scripts ("npm run a && npm run a") could otherwise multiply.
const maxCommandSteps = 256

func (d *detection) analyzeCommandDepth(cmd, origin string, depth int) listen {
	var best listen
	for _, seg := range splitCommand(cmd) {
		if l := d.analyzeSegment(seg, origin, depth); l.known() {
			best = l
		}
	}
	return best
}

func (d *detection) analyzeSegment(words []string, origin string, depth int) listen {
	if d.steps--; d.steps < 0 || depth > 4 {
		return listen{}
	}
	// Shell wrappers: sh -c "cmd" (or -lc, -ec) runs cmd.
	if len(words) >= 3 && (path.Base(words[0]) == "sh" || path.Base(words[0]) == "bash") &&
		strings.HasPrefix(words[1], "-") && strings.HasSuffix(words[1], "c") {
		return d.analyzeCommandDepth(words[2], origin, depth+1)
	}
	words, envPort, envPortText, envReadsPORT := stripPrefixes(words)
	if len(words) == 0 {
		return listen{}
	}
	// npm start without a start script runs node server.js.
	if len(words) == 2 && path.Base(words[0]) == "npm" && words[1] == "start" && d.scripts["start"] == "" {
		words = []string{"node", "server.js"}
	}

	// Package-manager scripts: "npm start", "yarn build", "pnpm run start:prod".
	if name, rest, ok := d.scriptCall(words); ok {
		inner := d.analyzeCommandDepth(d.scripts[name], "package.json scripts."+name, depth+1)
		if l, ok := portFlags(rest, origin); ok {
			return l
		}
		return withEnvPort(inner, envPort, envPortText, envReadsPORT, origin)
	}

	if l, ok := portFlags(words, origin); ok {
		return l
	}
	tool := toolFor(words)
	var l listen
	switch {
	case tool != nil && tool.name == "puma" && d.t != nil && d.t.isFile("config/puma.rb"):
		// Rails' generated config/puma.rb reads PORT; the file decides.
		if sl, ok := d.scanFile("config/puma.rb"); ok {
			l = sl
		}
	case tool != nil && tool.port > 0:
		l = frameworkDefault(tool.port, tool.readsPORT, tool.label)
	}
	if !l.known() && d.t != nil {
		if file := d.scriptFile(words); file != "" {
			if sl, ok := d.scanFile(file); ok {
				l = sl
			}
		}
	}
	if !l.known() && mentionsPORT(words) {
		l = listen{readsPORT: true, reader: origin}
	}
	return withEnvPort(l, envPort, envPortText, envReadsPORT, origin)
}

// withEnvPort applies a "PORT=4000 cmd" prefix: it sets PORT for cmd, which is
// the port when cmd reads PORT (or when we cannot tell).
func withEnvPort(l listen, port int, text string, readsPORT bool, origin string) listen {
	switch {
	case port > 0 && (l.readsPORT || !l.known()):
		return fixed(port, origin+" ("+text+")")
	case readsPORT && !l.known():
		return listen{readsPORT: true, reader: origin}
	}
	return l
}

// stripPrefixes drops env assignments and wrappers ("npx", "bundle exec", "python -m")
// and reports a PORT=... assignment among them.
func stripPrefixes(words []string) (rest []string, port int, text string, readsPORT bool) {
	for len(words) > 0 {
		w := words[0]
		if k, v, ok := strings.Cut(w, "="); ok && isEnvName(k) {
			if k == "PORT" {
				if p, ok := parsePort(v); ok {
					port, text = p, w
				} else if strings.Contains(v, "$") {
					readsPORT = true
				}
			}
			words = words[1:]
			continue
		}
		base := path.Base(w)
		if wrappers[base] {
			words = words[1:]
			// Wrapper flags: "npx -y next", "dotenv -e .env -- node".
			for len(words) > 0 && strings.HasPrefix(words[0], "-") && words[0] != "--" {
				if (words[0] == "-e" || words[0] == "-c" || words[0] == "-p") && base == "dotenv" && len(words) > 1 {
					words = words[1:]
				}
				words = words[1:]
			}
			continue
		}
		if subs, ok := runWrappers[base]; ok && len(words) > 1 && slices.Contains(subs, words[1]) {
			words = words[2:]
			continue
		}
		if (base == "python" || base == "python3" || strings.HasPrefix(base, "python3.")) && len(words) > 2 && words[1] == "-m" {
			words = words[2:]
			continue
		}
		break
	}
	return words, port, text, readsPORT
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// scriptCall recognises a package-manager call of a package.json script.
func (d *detection) scriptCall(words []string) (name string, rest []string, ok bool) {
	pm := path.Base(words[0])
	if pm != "npm" && pm != "pnpm" && pm != "yarn" && pm != "bun" || len(words) < 2 {
		return "", nil, false
	}
	i := 1
	// Flags before the script: "pnpm --filter web start", "yarn --cwd x start".
	for i < len(words) && strings.HasPrefix(words[i], "-") {
		if words[i] == "--filter" || words[i] == "-F" || words[i] == "--cwd" || words[i] == "-C" || words[i] == "--prefix" {
			// A script of another package: we only know our own scripts.
			return "", nil, false
		}
		i++
	}
	if i >= len(words) {
		return "", nil, false
	}
	sub := words[i]
	switch {
	case sub == "run" || sub == "run-script":
		if i+1 < len(words) {
			name = words[i+1]
			rest = words[i+2:]
		}
	case sub == "start" || sub == "test":
		name, rest = sub, words[i+1:]
	case pm != "npm":
		// yarn/pnpm/bun run scripts without "run"; anything else is one of their commands.
		name, rest = sub, words[i+1:]
	}
	if _, ok := d.scripts[name]; !ok || name == "" {
		return "", nil, false
	}
	return name, rest, true
}

func toolFor(words []string) *serverTool {
	base := path.Base(words[0])
	// A sub-command comes right after its tool: "next start -p 3000".
	next := ""
	if len(words) > 1 && !strings.HasPrefix(words[1], "-") {
		next = words[1]
	}
	// "python manage.py runserver [addr]" names its server by a file.
	if strings.HasSuffix(base, "manage.py") || (strings.HasPrefix(base, "python") && next == "manage.py") {
		if slices.Contains(words, "runserver") {
			return &serverTool{name: "runserver", port: 8000, label: "manage.py runserver"}
		}
		return nil
	}
	if base == "php" && next == "artisan" {
		if !slices.Contains(words, "serve") {
			return nil
		}
	}
	for i := range serverTools {
		t := &serverTools[i]
		if t.name != base {
			continue
		}
		if t.subs == nil || slices.Contains(t.subs, next) {
			return t
		}
	}
	return nil
}

// scriptFile is the source file a runner command executes: "node dist/server.js",
// "bun src/index.ts", "python app.py", "nest start" (src/main.ts). Files that
// only exist after a build are mapped back to their sources.
func (d *detection) scriptFile(words []string) string {
	base := path.Base(words[0])
	if base == "nest" && len(words) > 1 && words[1] == "start" {
		return d.t.firstFile("src/main.ts", "src/main.js")
	}
	if !scriptRunners[base] && !strings.HasPrefix(base, "python3.") {
		return ""
	}
	args := words[1:]
	if (base == "bun" || base == "deno") && len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			// Flags with a separate value: node -r dotenv/config, --env-file .env.
			if a == "-r" || a == "--require" || a == "--import" || a == "--loader" || a == "--env-file" || a == "-e" {
				i++
			}
			continue
		}
		return d.resolveScript(a)
	}
	return ""
}

var scriptExts = []string{".ts", ".js", ".mjs", ".cjs", ".mts", ".cts", ".tsx", ".jsx", ".py", ".rb"}

func (d *detection) resolveScript(arg string) string {
	arg = strings.TrimPrefix(path.Clean(arg), "./")
	// Dockerfiles run absolute paths under their WORKDIR ("/app/server.js");
	// the repo is what was copied there.
	if path.IsAbs(arg) {
		parts := strings.Split(strings.TrimPrefix(arg, "/"), "/")
		for i := range parts {
			if rel := path.Join(parts[i:]...); d.t.isFile(rel) {
				return rel
			}
		}
		return ""
	}
	if arg == "." {
		if d.pkg != nil && d.pkg.Main != "" {
			arg = strings.TrimPrefix(path.Clean(d.pkg.Main), "./")
		} else {
			arg = "index.js"
		}
	}
	if d.t.isFile(arg) {
		return arg
	}
	if d.t.isDir(arg) {
		if f := d.t.firstFile(arg+"/index.js", arg+"/index.ts", arg+"/main.py"); f != "" {
			return f
		}
	}
	// Build output ("dist/main.js") is not in the repo; its source usually is.
	stem := strings.TrimSuffix(arg, path.Ext(arg))
	for _, out := range []string{"dist/", "build/", "out/", "lib/"} {
		if s, ok := strings.CutPrefix(stem, out); ok {
			s = strings.TrimPrefix(s, "src/")
			var cands []string
			for _, ext := range scriptExts[:6] {
				cands = append(cands, "src/"+s+ext, s+ext)
			}
			return d.t.firstFile(cands...)
		}
	}
	if path.Ext(arg) == "" {
		for _, ext := range scriptExts {
			if d.t.isFile(arg + ext) {
				return arg + ext
			}
		}
	}
	return ""
}

// portFlags finds a port stated on the command line.
func portFlags(words []string, origin string) (listen, bool) {
	for i, w := range words {
		flag, val, hasVal := strings.Cut(w, "=")
		if !hasVal && i+1 < len(words) {
			val = words[i+1]
		}
		var text string
		switch flag {
		case "--port", "-p", "--http-port", "--server.port", "--listen-port":
			text = flag + " " + val
		case "--bind", "-b", "--listen", "-l", "--urls", "-S", "--host-port":
			// Values like 0.0.0.0:8000, tcp://:3000, http://+:5000;8443; a bare
			// port only for --listen/-l (serve, waitress).
			text = flag + " " + val
			val = hostPort(val, flag == "--listen" || flag == "-l")
			if val == "" {
				continue
			}
		case "-Dserver.port", "-Dhttp.port", "-Dquarkus.http.port", "-Dmicronaut.server.port", "-Dswarm.http.port":
			if !hasVal {
				continue
			}
			text = w
		case "runserver":
			// manage.py runserver [addr:]port
			if i+1 >= len(words) {
				continue
			}
			val = hostPort(words[i+1], true)
			text = "runserver " + words[i+1]
		default:
			// "-p3000" is how some people write it.
			if strings.HasPrefix(w, "-p") && len(w) > 2 {
				if _, ok := parsePort(w[2:]); ok {
					val, text = w[2:], w
					break
				}
			}
			continue
		}
		if p, ok := parsePort(val); ok {
			return fixed(p, origin+" ("+text+")"), true
		}
		if reads, def := portVar(val); reads {
			l := listen{readsPORT: true, reader: origin, port: def}
			if def > 0 {
				l.source = origin + " (" + text + ")"
			}
			return l, true
		}
	}
	return listen{}, false
}

// hostPort extracts the port of "host:port" forms; a bare value passes only when bare is set.
func hostPort(v string, bare bool) string {
	v, _, _ = strings.Cut(v, ";")
	v, _, _ = strings.Cut(v, ",")
	if i := strings.Index(v, "://"); i >= 0 {
		v = v[i+3:]
	}
	v = strings.TrimSuffix(v, "/")
	if i := strings.LastIndex(v, ":"); i >= 0 {
		// ${PORT:-3000} carries its own colon.
		if j := strings.Index(v, "${"); j >= 0 && j < i {
			return v[j:]
		}
		return v[i+1:]
	}
	if bare {
		return v
	}
	return ""
}

// portVar recognises $PORT, ${PORT} and ${PORT:-3000}.
func portVar(v string) (reads bool, def int) {
	v = strings.Trim(v, `"'`)
	switch {
	case v == "$PORT" || v == "${PORT}":
		return true, 0
	case strings.HasPrefix(v, "${PORT") && strings.HasSuffix(v, "}"):
		inner := strings.TrimSuffix(strings.TrimPrefix(v, "${PORT"), "}")
		inner = strings.TrimLeft(inner, ":-=")
		p, _ := parsePort(inner)
		return true, p
	}
	return false, 0
}

func mentionsPORT(words []string) bool {
	for _, w := range words {
		if strings.Contains(w, "$PORT") || strings.Contains(w, "${PORT") {
			return true
		}
	}
	return false
}

// splitCommand splits a shell command line into simple commands (on && || ; | &
// and newlines) of unquoted words. It is no shell: good enough to find the
// server in a start script, never executed.
func splitCommand(cmd string) [][]string {
	var (
		segs  [][]string
		words []string
		cur   strings.Builder
		inTok bool
		quote rune
	)
	flushWord := func() {
		if inTok {
			words = append(words, cur.String())
			cur.Reset()
			inTok = false
		}
	}
	flushSeg := func() {
		flushWord()
		if len(words) > 0 {
			segs = append(segs, words)
			words = nil
		}
	}
	rs := []rune(cmd)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inTok = c, true
		case c == '\\' && i+1 < len(rs):
			i++
			if rs[i] != '\n' {
				cur.WriteRune(rs[i])
				inTok = true
			}
		case c == ' ' || c == '\t' || c == '\r':
			flushWord()
		case c == '\n' || c == ';' || c == '&' || c == '|':
			flushSeg()
		case c == '(' || c == ')':
			flushWord()
		default:
			cur.WriteRune(c)
			inTok = true
		}
	}
	flushSeg()
	return segs
}

// describeListen is a one-line account of l for reasons.
func describeListen(l listen) string {
	switch {
	case l.explicit:
		return fmt.Sprintf("port %d from %s", l.port, l.source)
	case l.readsPORT && l.port > 0:
		return fmt.Sprintf("%s reads PORT (default %d)", nonEmpty(l.reader, l.source), l.port)
	case l.readsPORT:
		return nonEmpty(l.reader, l.source) + " reads PORT"
	case l.port > 0:
		return fmt.Sprintf("port %d from %s", l.port, l.source)
	}
	return "no port found"
}

func nonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
