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
//     exporting the mode=max cache to a reference of its own; the
//     difference is the export's cost. Two cold builds differ by 10-20%
//     by themselves (their npm ci fetches from the npm registry through the
//     machine's proxy), more than the export costs, so each is measured
//     twice, in the order off, export, export, off (drift cancels), and
//     compared as means.
//   - buildkit, warm on a new builder: a fifth fresh buildkitd, the next
//     source change, importing the last export's cache; compared with
//     buildkit cold.
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
	var cold, export [2]Result
	var cacheRef string
	for _, step := range []struct {
		export bool
		n      int
	}{{false, 0}, {true, 0}, {true, 1}, {false, 1}} {
		var err error
		if !step.export {
			cold[step.n], err = bkBuild(fmt.Sprintf("cold, CACHE=off (%d of 2)", step.n+1), sha, map[string]string{"CACHE": "off"})
		} else {
			// A reference of its own, or the second would import the first.
			cacheRef = fmt.Sprintf("%s/bench/%s-buildkit-%d:buildcache", h.Registry.Addr(), w.App.Name, step.n+1)
			export[step.n], err = bkBuild(fmt.Sprintf("cold with cache export (%d of 2)", step.n+1), sha, map[string]string{"CACHE_REF": cacheRef})
		}
		if err != nil {
			return "", err
		}
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

	reported := func(r Result) time.Duration { return r.Reported }
	wall := func(r Result) time.Duration { return r.Wall }
	coldMean, exportMean := mean(cold, reported), mean(export, reported)
	m.cells[ColBKCold] = fmt.Sprintf("%s (%s, %s)", table.Duration(coldMean),
		table.Duration(cold[0].Reported), table.Duration(cold[1].Reported))
	// The export runs after SUCCEEDED: it costs the platform nothing and
	// the builder (the pod) the rest, both shown.
	m.cells[ColBKExport] = fmt.Sprintf("%s (%+.0f%%; %s, %s); runner exits at %s (%+.0f%%)",
		table.Duration(exportMean), percentOver(exportMean, coldMean),
		table.Duration(export[0].Reported), table.Duration(export[1].Reported),
		table.Duration(mean(export, wall)), percentOver(mean(export, wall), mean(cold, wall)))
	m.cells[ColBKNew] = fmt.Sprintf("%s (%s)", table.Duration(warm.Reported), table.Ratio(warm.Reported, coldMean))
	return fmt.Sprintf("%s (%s)", table.Duration(dockerNew.Reported), table.Ratio(dockerNew.Reported, w.Cold.Reported)), nil
}

func mean(rs [2]Result, of func(Result) time.Duration) time.Duration {
	return (of(rs[0]) + of(rs[1])) / 2
}

// percentOver is how much longer d is than base, in percent.
func percentOver(d, base time.Duration) float64 {
	return 100 * (d.Seconds() - base.Seconds()) / base.Seconds()
}
