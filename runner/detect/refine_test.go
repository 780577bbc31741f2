package detect

import (
	"strings"
	"testing"
)

func TestRefineAppliesWhatThePlannerFound(t *testing.T) {
	four := 4321
	base := Result{Framework: "astro", Port: &four, PortSource: "framework default (astro preview)", Reasons: []string{"r"}}
	cases := []struct {
		name   string
		hints  Hints
		port   int
		source string // substring
		start  string
	}{
		{"nothing", Hints{}, 4321, "astro preview", ""},
		{"a start command stating its port", Hints{StartCommand: "node server.js --port 9000", StartOrigin: "the node template's start command"}, 9000, "--port 9000", "node server.js --port 9000"},
		{"a start command reading PORT", Hints{StartCommand: "next start", StartOrigin: "START_COMMAND"}, DefaultPort, "next start", "next start"},
		{"a server config the planner wrote", Hints{StartCommand: "caddy run --config /etc/caddy/Caddyfile", Port: 8080, PortSource: "Caddy on $PORT"}, 8080, "Caddy on $PORT", "caddy run --config /etc/caddy/Caddyfile"},
		{"the start command over the planner's port", Hints{StartCommand: "uvicorn main:app --port 7000", Port: 8080, PortSource: "x"}, 7000, "--port 7000", "uvicorn main:app --port 7000"},
		{"a start command telling nothing", Hints{StartCommand: "/server"}, 4321, "astro preview", "/server"},
	}
	for _, c := range cases {
		got := Refine(base, c.hints)
		if got.Port == nil || *got.Port != c.port || !strings.Contains(got.PortSource, c.source) || got.StartCommand != c.start {
			t.Errorf("%s: port %v from %q, start %q; want %d from ...%s..., start %q", c.name, got.Port, got.PortSource, got.StartCommand, c.port, c.source, c.start)
		}
		if got.Framework != "astro" {
			t.Errorf("%s: framework %q changed", c.name, got.Framework)
		}
		if len(base.Reasons) != 1 || *base.Port != 4321 {
			t.Fatalf("%s: Refine changed its argument", c.name)
		}
	}
}
