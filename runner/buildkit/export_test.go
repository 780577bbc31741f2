package buildkit

import (
	"testing"

	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func TestCacheExportLogShowsOnlyTheExport(t *testing.T) {
	step := digest.FromString("step")
	export := digest.FromString("export")
	exporting := map[digest.Digest]bool{}

	first := onlyCacheExport(&bkclient.SolveStatus{
		Vertexes: []*bkclient.Vertex{
			{Digest: step, Name: "[build 3/3] RUN npm run build", Cached: true},
			{Digest: export, Name: "exporting cache to registry"},
		},
		Logs: []*bkclient.VertexLog{{Vertex: step, Data: []byte("compiled")}},
	}, exporting)
	if first == nil || len(first.Vertexes) != 1 || first.Vertexes[0].Digest != export || len(first.Logs) != 0 {
		t.Fatalf("kept %+v, want the export's vertex alone", first)
	}

	// Later updates name only the vertex's digest: the export's progress
	// must still come through, the step's must not.
	later := onlyCacheExport(&bkclient.SolveStatus{
		Statuses: []*bkclient.VertexStatus{
			{Vertex: export, ID: "writing layer sha256:abc"},
			{Vertex: step, ID: "extracting sha256:def"},
		},
	}, exporting)
	if later == nil || len(later.Statuses) != 1 || later.Statuses[0].Vertex != export {
		t.Fatalf("kept %+v, want the export's status alone", later)
	}

	if got := onlyCacheExport(&bkclient.SolveStatus{
		Vertexes: []*bkclient.Vertex{{Digest: step, Name: "[build 3/3] RUN npm run build", Cached: true}},
	}, exporting); got != nil {
		t.Fatalf("an update about Dockerfile steps only was kept: %+v", got)
	}
}
