package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestPrintJSONFieldOrderAndShape(t *testing.T) {
	r, err := Detect(context.Background(), "testdata/apps/monorepo-pnpm-next")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := PrintJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	order := []string{`"framework"`, `"language"`, `"port"`, `"hasDockerfile"`, `"packageManager"`, `"lockfile"`, `"versions"`, `"monorepo"`, `"reasons"`}
	last := -1
	for _, key := range order {
		i := strings.Index(out, key)
		if i < 0 || i < last {
			t.Fatalf("key %s missing or out of order in:\n%s", key, out)
		}
		last = i
	}
	if !strings.Contains(out, `"port": null`) {
		t.Errorf("a missing port should print as null:\n%s", out)
	}
	var back Result
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if back.Monorepo == nil || back.Monorepo.Tool != "pnpm-workspaces" {
		t.Errorf("monorepo did not round-trip: %+v", back.Monorepo)
	}
}

func TestPrintJSONOfZeroResultHasEmptyReasons(t *testing.T) {
	var buf bytes.Buffer
	if err := PrintJSON(&buf, Result{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"reasons": []`) {
		t.Errorf("reasons should be [] not null:\n%s", buf.String())
	}
}

func TestPrintJSONKeepsShellOperatorsReadable(t *testing.T) {
	var buf bytes.Buffer
	_ = PrintJSON(&buf, Result{StartCommand: "a && b > c"})
	if !strings.Contains(buf.String(), `"a && b > c"`) {
		t.Errorf("start command escaped:\n%s", buf.String())
	}
}

func TestLogLinesSummary(t *testing.T) {
	r, err := Detect(context.Background(), "testdata/apps/next-custom-port")
	if err != nil {
		t.Fatal(err)
	}
	lines := r.LogLines()
	want := "detected next (node), port 4000 from package.json scripts.start (-p 4000), package manager pnpm (pnpm-lock.yaml)"
	if lines[0] != want {
		t.Errorf("first line = %q, want %q", lines[0], want)
	}
	if lines[1] != "versions: pnpm 9.1.0" {
		t.Errorf("second line = %q", lines[1])
	}
	for _, l := range lines[2:] {
		if !strings.HasPrefix(l, "- ") {
			t.Errorf("reason line %q lacks its bullet", l)
		}
	}
}

func TestLogLinesWithoutPort(t *testing.T) {
	lines := Result{Framework: "unknown", Reasons: []string{"x"}}.LogLines()
	if lines[0] != "detected unknown, no port detected" {
		t.Errorf("first line = %q", lines[0])
	}
}
