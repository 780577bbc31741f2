package buildbench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/bench/table"
	"github.com/alternatefutures/af-builder/internal/testinfra/appcheck"
	"github.com/alternatefutures/af-builder/internal/testinfra/baseimage"
	"github.com/alternatefutures/af-builder/internal/testinfra/buildkitd"
	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
)

// Columns of the registry-cache measures.
const (
	ColDockerNew   = "docker: warm, new builder"
	ColBKCold      = "buildkit: cold"
	ColBKExport    = "buildkit: cold + cache export, reported"
	ColBKNew       = "buildkit: warm, new builder"
	registryMirror = "mirror" // repository prefix of the stand-ins in the registry
)

// NewBuilderMeasures are the registry layer cache's figures, side by side
// in one run: each "new builder" is a daemon with an empty store (only the
// stand-in base images, which a node pulls anyway) that has never built the
// app, so only the registry cache can make it warm.
//
//   - docker, warm on a new builder: a fresh dockerd builds the next source
//     change with cache-from the cache tag the cold and warm builds pushed
//     (inline cache); compared with the docker cold build.
//   - buildkit, cold: a fresh buildkitd with CACHE=off.
//   - buildkit, cold + cache export: another fresh buildkitd, same commit,
//     exporting the mode=max cache to a tag of its own; the difference is
//     the export's cost.
//   - buildkit, warm on a new builder: a third fresh buildkitd, the next
//     source change, importing that cache; compared with buildkit cold.
func NewBuilderMeasures() []Measure {
	m := &newBuilderBench{}
	return []Measure{
		{Column: ColDockerNew, Run: m.run},
		{Column: ColBKCold, Run: m.cell(ColBKCold)},
		{Column: ColBKExport, Run: m.cell(ColBKExport)},
		{Column: ColBKNew, Run: m.cell(ColBKNew)},
	}
}

type newBuilderBench struct {
	cells map[string]string
}

func (m *newBuilderBench) cell(col string) func(context.Context, *Harness, *Workload) (string, error) {
	return func(context.Context, *Harness, *Workload) (string, error) { return m.cells[col], nil }
}

func (m *newBuilderBench) run(ctx context.Context, h *Harness, w *Workload) (string, error) {
	m.cells = map[string]string{}
	imgs, err := baseimage.All()
	if err != nil {
		return "", err
	}

	// Docker, warm on a new builder. This engine also pushes the stand-ins
	// to the registry for the buildkitds, which pull FROM images from there.
	fmt.Fprintf(h.Log, "bench: %s: docker, new builder\n", w.App.Name)
	d, err := dockerd.Start(ctx, dockerd.Options{})
	if err != nil {
		return "", err
	}
	defer d.Stop()
	if err := baseimage.Import(ctx, d.Host(), baseimage.Options{Log: h.Log}, imgs...); err != nil {
		return "", err
	}
	mirror := h.Registry.Addr() + "/" + registryMirror
	if err := baseimage.Push(ctx, d.Host(), mirror, h.Registry.RegistryAuth(), imgs...); err != nil {
		return "", err
	}
	sha, err := w.Change()
	if err != nil {
		return "", err
	}
	dockerNew, err := h.Build(ctx, d.Host(), w, sha, nil)
	if err != nil {
		return "", fmt.Errorf("docker, new builder: %w", err)
	}

	// BuildKit: cold without cache, cold with the export, warm on a new one.
	bkEnv := func(extra map[string]string) map[string]string {
		env := map[string]string{"BUILD_BACKEND": "buildkit", "DOCKER_HOST": ""}
		for k, v := range w.App.BuildEnv(mirror) {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	bkBuild := func(what, sha string, extra map[string]string) (Result, error) {
		fmt.Fprintf(h.Log, "bench: %s: buildkit, %s\n", w.App.Name, what)
		bk, err := buildkitd.Start(ctx, buildkitd.Options{})
		if err != nil {
			return Result{}, err
		}
		defer bk.Stop()
		env := bkEnv(extra)
		env["BUILDKIT_HOST"] = bk.Address()
		r, err := h.Build(ctx, "", w, sha, env)
		if err != nil {
			return r, fmt.Errorf("buildkit, %s: %w", what, err)
		}
		fmt.Fprintf(h.Log, "bench: %s: buildkit, %s: %s\n", w.App.Name, what, table.Duration(r.Reported))
		return r, nil
	}
	cacheRef := fmt.Sprintf("%s/bench/%s-buildkit:buildcache", h.Registry.Addr(), w.App.Name)
	cold, err := bkBuild("cold, CACHE=off", sha, map[string]string{"CACHE": "off"})
	if err != nil {
		return "", err
	}
	export, err := bkBuild("cold with cache export", sha, map[string]string{"CACHE_REF": cacheRef})
	if err != nil {
		return "", err
	}
	if sha, err = w.Change(); err != nil {
		return "", err
	}
	warm, err := bkBuild("warm, new builder", sha, map[string]string{"CACHE_REF": cacheRef})
	if err != nil {
		return "", err
	}

	// The warm image must work, or the time means nothing.
	c, err := client.New(client.WithHost(d.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		return "", err
	}
	defer c.Close()
	pull, err := c.ImagePull(ctx, warm.Tag, client.ImagePullOptions{RegistryAuth: h.Registry.RegistryAuth()})
	if err != nil {
		return "", err
	}
	if err := pull.Wait(ctx); err != nil {
		return "", err
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	got, err := appcheck.Get(actx, c, warm.Tag, warm.Port, "/")
	if err != nil {
		return "", fmt.Errorf("the buildkit warm build's image: %w", err)
	}
	if got.Status != 200 || !strings.Contains(got.Body, w.App.Answer) {
		return "", fmt.Errorf("the buildkit warm build's image answered %d %.200q", got.Status, got.Body)
	}

	m.cells[ColBKCold] = table.Duration(cold.Reported)
	// The export runs after SUCCEEDED: it costs the platform nothing and
	// the builder (the pod) the rest, both shown.
	m.cells[ColBKExport] = fmt.Sprintf("%s (%+.0f%%); runner exits at %s (%+.0f%%)",
		table.Duration(export.Reported), percentOver(export.Reported, cold.Reported),
		table.Duration(export.Wall), percentOver(export.Wall, cold.Wall))
	m.cells[ColBKNew] = fmt.Sprintf("%s (%s)", table.Duration(warm.Reported), table.Ratio(warm.Reported, cold.Reported))
	return fmt.Sprintf("%s (%s)", table.Duration(dockerNew.Reported), table.Ratio(dockerNew.Reported, w.Cold.Reported)), nil
}

// percentOver is how much longer d is than base, in percent.
func percentOver(d, base time.Duration) float64 {
	return 100 * (d.Seconds() - base.Seconds()) / base.Seconds()
}
