package detect

import (
	"strings"
	"testing"
)

func TestPlanFillsPortAndStartButNeverTheFramework(t *testing.T) {
	r := Result{Framework: "python", Language: "python", Reasons: []string{"pyproject.toml -> pip"}}
	plan := `{"providers": ["python"], "variables": {"PORT": "5001"}, "phases": {"setup": {"nixPkgs": ["python3"]}}, "start": {"cmd": "python main.py"}}`
	got := RefineWithNixpacksPlan(r, []byte(plan))
	if got.Framework != "python" {
		t.Errorf("framework = %q, want python kept", got.Framework)
	}
	if got.Port == nil || *got.Port != 5001 || got.PortSource != "nixpacks plan variables.PORT" {
		t.Errorf("port = %s (%s), want 5001 from variables.PORT", portString(got.Port), got.PortSource)
	}
	if got.StartCommand != "python main.py" {
		t.Errorf("startCommand = %q", got.StartCommand)
	}
	if len(r.Reasons) != 1 {
		t.Errorf("the caller's Reasons were changed: %q", r.Reasons)
	}
}

func TestPlanStartCommandGivesThePort(t *testing.T) {
	cases := map[string]int{
		`{"start": {"cmd": "uvicorn main:app --port 8123"}}`:          8123,
		`{"start": {"cmd": "gunicorn app:app"}}`:                      DefaultPort,
		`{"phases": {"start": {"cmd": "npm run start -- -p $PORT"}}}`: DefaultPort,
	}
	for plan, want := range cases {
		got := RefineWithNixpacksPlan(Result{Framework: "unknown"}, []byte(plan))
		if got.Port == nil || *got.Port != want {
			t.Errorf("%s: port = %s, want %d", plan, portString(got.Port), want)
		}
	}
}

func TestPlanNeverOverridesDetectedPortOrFramework(t *testing.T) {
	p := 3000
	r := Result{Framework: "next", Port: &p, PortSource: "x", StartCommand: "next start", Reasons: []string{}}
	got := RefineWithNixpacksPlan(r, []byte(`{"providers": ["node"], "variables": {"PORT": "80"}, "start": {"cmd": "npm run start"}}`))
	if *got.Port != 3000 || got.Framework != "next" || got.StartCommand != "next start" {
		t.Errorf("plan overrode the manifests: %+v", got)
	}
}

func TestBadPlanLeavesResultAndSaysWhy(t *testing.T) {
	for _, plan := range []string{`{"start": `, `not json`, ``, `[]`, strings.Repeat(" ", maxPlanBytes+1)} {
		r := Result{Framework: "go", Reasons: []string{"go.mod -> go modules"}}
		got := RefineWithNixpacksPlan(r, []byte(plan))
		if got.Framework != "go" || got.Port != nil || got.StartCommand != "" {
			t.Errorf("%.20q: result changed: %+v", plan, got)
		}
		if len(got.Reasons) != 2 || !strings.HasPrefix(got.Reasons[1], "nixpacks plan: ") {
			t.Errorf("%.20q: reasons = %q, want one more about the plan", plan, got.Reasons)
		}
	}
}
