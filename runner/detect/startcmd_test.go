package detect

import (
	"fmt"
	"testing"
)

func TestStartCommandPorts(t *testing.T) {
	scripts := map[string]string{
		"start":      "node server.js",
		"start:prod": "next start --port 4100",
		"serve":      "npm run start:prod",
		"migrate":    "prisma migrate deploy",
	}
	cases := []struct {
		cmd       string
		port      int
		readsPORT bool
		explicit  bool
	}{
		// Stated ports win over PORT.
		{"uvicorn main:app --host 0.0.0.0 --port 8001", 8001, false, true},
		{"gunicorn app:app --bind 0.0.0.0:5005 --workers 2", 5005, false, true},
		{"gunicorn -b :7000 app:app", 7000, false, true},
		{"PORT=4000 next start", 4000, false, true},
		{"cross-env NODE_ENV=production PORT=4001 next start", 4001, false, true},
		{"python manage.py runserver 0.0.0.0:8001", 8001, false, true},
		{"java -Dserver.port=9000 -jar app.jar", 9000, false, true},
		{"php -S 0.0.0.0:8080 -t public", 8080, false, true},
		{"serve -s dist -l 5000", 5000, false, true},
		{"serve -s dist -l tcp://0.0.0.0:5001", 5001, false, true},
		{"sh -c 'vite preview --port 4000'", 4000, false, true},
		{"dotnet app.dll --urls http://0.0.0.0:5080", 5080, false, true},
		{"streamlit run app.py --server.port=8502", 8502, false, true},
		{"next start -p4200", 4200, false, true},
		// The last command that says anything counts.
		{"npm run migrate && npm run serve", 4100, false, true},
		{"python manage.py migrate && gunicorn mysite.wsgi", 8000, true, false},
		// $PORT on the command line means it reads PORT.
		{"uvicorn main:app --host 0.0.0.0 --port $PORT", 0, true, false},
		{"hypercorn app:app --bind 0.0.0.0:${PORT:-8000}", 8000, true, false},
		{"bundle exec puma -p ${PORT}", 0, true, false},
		{"./bin/server --listen-port=$PORT", 0, true, false},
		// Known servers and their own defaults.
		{"next start", 3000, true, false},
		{"npx next start", 3000, true, false},
		{"bundle exec rails s -b 0.0.0.0", 3000, true, false},
		{"vite preview", 4173, false, false},
		{"vite", 5173, false, false},
		{"ng serve", 4200, false, false},
		{"flask run --host=0.0.0.0", 5000, false, false},
		{"poetry run uvicorn app:app", 8000, false, false},
		{"python -m http.server", 8000, false, false},
		{"rackup config.ru", 9292, false, false},
		{"mix phx.server", 4000, true, false},
		{"php artisan serve", 8000, false, false},
		// Nothing to go on.
		{"node worker.js", 0, false, false},
		{"vite build", 0, false, false},
		{"echo hello", 0, false, false},
		{"", 0, false, false},
	}
	d := &detection{scripts: scripts}
	for _, c := range cases {
		l := d.analyzeCommand(c.cmd, "test")
		if l.port != c.port || l.readsPORT != c.readsPORT || l.explicit != c.explicit {
			t.Errorf("%q: port %d readsPORT %v explicit %v; want %d %v %v", c.cmd, l.port, l.readsPORT, l.explicit, c.port, c.readsPORT, c.explicit)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	got := splitCommand(`a "b c" && d 'e;f'; g\ h | i`)
	want := [][]string{{"a", "b c"}, {"d", "e;f"}, {"g h"}, {"i"}}
	if len(got) != len(want) {
		t.Fatalf("splitCommand = %q, want %q", got, want)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("splitCommand = %q, want %q", got, want)
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("splitCommand = %q, want %q", got, want)
			}
		}
	}
}

func TestResolvePORTFromRunnerOrImage(t *testing.T) {
	next := frameworkDefault(3000, true, "next start")
	if p, src := next.resolve(DefaultPort, "PORT set by the runner"); p != 8080 || src != "PORT set by the runner (next start reads PORT)" {
		t.Errorf("next with runner PORT: %d %q", p, src)
	}
	if p, _ := next.resolve(0, ""); p != 3000 {
		t.Errorf("next without PORT: %d, want its default 3000", p)
	}
	vite := frameworkDefault(4173, false, "vite preview")
	if p, _ := vite.resolve(DefaultPort, "PORT set by the runner"); p != 4173 {
		t.Errorf("vite preview ignores PORT: got %d, want 4173", p)
	}
	stated := fixed(4000, "scripts.start (-p 4000)")
	if p, _ := stated.resolve(DefaultPort, "PORT set by the runner"); p != 4000 {
		t.Errorf("a stated port beats PORT: got %d", p)
	}
}

func TestScanSource(t *testing.T) {
	cases := []struct {
		name, src string
		port      int
		readsPORT bool
	}{
		{"server.js", "const port = process.env.PORT || 3000;\napp.listen(port)", 3000, true},
		{"server.ts", "await app.listen(Number(process.env.PORT ?? 4000))", 4000, true},
		{"main.py", "app.run(host='0.0.0.0', port=int(os.environ.get('PORT', 5000)))", 5000, true},
		{"main.py", "port = int(os.getenv('PORT', default='8001'))", 8001, true},
		{"main.go", "port := os.Getenv(\"PORT\")\nif port == \"\" {\n\tport = \"8080\"\n}", 8080, true},
		{"main.go", "log.Fatal(http.ListenAndServe(\":9090\", nil))", 9090, false},
		{"app.rb", "set :port, ENV.fetch('PORT') { 4567 }", 4567, true},
		{"runtime.exs", `port = String.to_integer(System.get_env("PORT") || "4000")`, 4000, true},
		{"main.rs", `let addr = SocketAddr::from(([0, 0, 0, 0], 3000));`, 3000, false},
		{"index.js", "const db = { port: 5432 };\napp.listen(8081)", 8081, false},
		{"index.js", "const db = { port: 5432 };", 0, false},
		{"index.js", "fetch('http://localhost:3000/api')", 0, false},
		{"bot.js", "client.login(token)", 0, false},
	}
	for _, c := range cases {
		l, ok := scanSource(c.name, []byte(c.src))
		if ok != (c.port > 0 || c.readsPORT) || l.port != c.port || l.readsPORT != c.readsPORT {
			t.Errorf("%s %q: ok %v port %d readsPORT %v; want port %d readsPORT %v", c.name, c.src, ok, l.port, l.readsPORT, c.port, c.readsPORT)
		}
	}
}

func portString(p *int) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}
