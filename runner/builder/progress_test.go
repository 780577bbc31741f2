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
		vtx("importing cache manifest from r/app:buildcache-dev-0a1b2c3d", false, "failed to configure registry cache importer: r/app:buildcache-dev-0a1b2c3d: not found"),
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
	// A step loaded from the registry cache when a later one needs its
	// files: its layers pulled, no output, no cached flag. And one that ran.
	pulledRun, ranRun := vtx("[stage-1 4/5] RUN npm prune", false, ""), vtx("[stage-1 5/5] RUN echo hi", false, "")
	if err := p.Send(ctx, &bkclient.SolveStatus{
		Vertexes: []*bkclient.Vertex{pulledRun, ranRun},
		Statuses: []*bkclient.VertexStatus{
			{ID: "sha256:0fcea66c9952658ba711d3d9ec87c113bc8d4e1fac472819be9428c3e8f8e518", Vertex: pulledRun.Digest},
			{ID: "extracting sha256:0fcea66c9952658ba711d3d9ec87c113bc8d4e1fac472819be9428c3e8f8e518", Vertex: pulledRun.Digest},
			{ID: "sha256:1111111111111111111111111111111111111111111111111111111111111111", Vertex: ranRun.Digest},
		},
		Logs: []*bkclient.VertexLog{{Vertex: ranRun.Digest, Data: []byte("hi\n")}},
	}); err != nil {
		t.Fatal(err)
	}
	p.Close()

	if got := p.Steps(); got != (Steps{Total: 6, Cached: 4}) || !got.CacheHit() {
		t.Errorf("steps = %+v, want 6 steps (FROM excluded), 4 from a cache", got)
	}
	var lines bytes.Buffer
	p.ReportCacheImports(&lines)
	want := "cache: [stage-1 4/5] RUN npm prune: CACHED (layers pulled from the registry cache, not run)\n" +
		"cache: not used: r/app:buildcache-dev-0a1b2c3d: not found (building without it)\n"
	if lines.String() != want {
		t.Errorf("cache lines = %q, want %q", lines.String(), want)
	}
	if !strings.Contains(out.String(), "[deps 3/3] RUN npm ci") || !strings.Contains(out.String(), "CACHED") {
		t.Errorf("display output lacks the steps:\n%s", out.String())
	}
}
