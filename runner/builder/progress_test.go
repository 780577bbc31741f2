package builder

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func vtx(name string, cached bool, errMsg string) *bkclient.Vertex {
	now := time.Now()
	return &bkclient.Vertex{Digest: digest.FromString(name), Name: name, Started: &now, Completed: &now, Cached: cached, Error: errMsg}
}

func TestStepsCountDockerfileInstructionsButNotFROMOrInternals(t *testing.T) {
	var out bytes.Buffer
	p, err := NewProgress(&out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []*bkclient.Vertex{
		vtx("[internal] load build definition from Dockerfile", false, ""),
		vtx("importing cache manifest from r/app:buildcache-dev-0a1b2c3d", false, "r/app:buildcache-dev-0a1b2c3d: not found"),
		vtx("importing cache manifest from r/app:buildcache", false, ""),
		vtx("[deps 1/3] FROM r/base:1", true, ""),
		vtx("[deps 2/3] COPY package.json .", true, ""),
		vtx("[deps 3/3] RUN npm ci", true, ""),
		vtx("[stage-1 2/3] COPY --from=deps /app/node_modules ./node_modules", true, ""),
		vtx("[stage-1 3/3] RUN npm run build", false, ""),
		vtx("exporting to image", false, ""),
	} {
		if err := p.Send(ctx, &bkclient.SolveStatus{Vertexes: []*bkclient.Vertex{v}}); err != nil {
			t.Fatal(err)
		}
	}
	// A vertex seen again (completed later) is one step, not two.
	if err := p.Send(ctx, &bkclient.SolveStatus{Vertexes: []*bkclient.Vertex{vtx("[deps 3/3] RUN npm ci", true, "")}}); err != nil {
		t.Fatal(err)
	}
	p.Close()

	if got := p.Steps(); got != (Steps{Total: 4, Cached: 3}) || !got.CacheHit() {
		t.Errorf("steps = %+v, want 4 steps (FROM excluded), 3 cached", got)
	}
	var lines bytes.Buffer
	p.ReportCacheImports(&lines)
	want := "cache: not used: r/app:buildcache-dev-0a1b2c3d: not found (building without it)\n"
	if lines.String() != want {
		t.Errorf("cache lines = %q, want %q", lines.String(), want)
	}
	if !strings.Contains(out.String(), "[deps 3/3] RUN npm ci") || !strings.Contains(out.String(), "CACHED") {
		t.Errorf("display output lacks the steps:\n%s", out.String())
	}
}
