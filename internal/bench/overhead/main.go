// Command overhead measures what the runner adds on top of the raw build
// pipeline (the "runner overhead"): the same commit of a generated
// 24 MB, 1,900-file repository, served by a real git smart-HTTP server,
// built and pushed on the same dockerd and registry, once by the real
// runner binary and once by `git fetch --depth 1 <sha>` + `git checkout` +
// `docker build` + `docker push`. Runs alternate which pipeline goes first;
// each run builds a commit of its own (one file differs), so neither finds
// the other's COPY layer cached and both push a new 24 MB layer.
//
//	go run ./internal/bench/overhead -runner bin/runner [-n 5]
//
// It prints per-run phase timings, the medians, and the ratio
// runner / raw (the goal: at most 1.05).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra/bigrepo"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
	"github.com/alternatefutures/af-builder/shared/token"
)

const (
	gitToken       = "ghs_benchOverheadToken0123456789abcdef"
	registryPass   = "bench-overhead-Pa55"
	callbackSecret = "bench-overhead-callback-secret"
	baseImage      = "af-bench/busybox:1"
)

func main() {
	runnerBin := flag.String("runner", "bin/runner", "the runner binary; a comma-separated list compares several (e.g. before and after a change) in the same runs")
	n := flag.Int("n", 5, "runs of each pipeline")
	dockerCLI := flag.String("docker", "", "docker CLI with built-in BuildKit (default: /usr/bin/docker, else PATH)")
	flag.Parse()
	if err := run(*runnerBin, *n, *dockerCLI); err != nil {
		fmt.Fprintln(os.Stderr, "bench-overhead:", err)
		os.Exit(1)
	}
}

type env struct {
	runners                   []string
	docker, dockerConfig, tmp string
	daemon                    *dockerd.Daemon
	reg                       *registry.Registry
	git                       *gitserver.Server
	sink                      *callbacksink.Sink
	repo                      *gitserver.Repo
}

// sample is one run of one pipeline: its phases in order and the total.
type sample struct {
	total time.Duration
	// cpu is the client side's user+system time: the runner process, or
	// the git and docker commands (with the children they waited for). The
	// server, dockerd and the registry do the same work for both; on a
	// loaded machine this is the comparison the scheduler cannot blur.
	cpu    time.Duration
	phases [][2]any // name, time.Duration
}

func run(runnerBin string, n int, dockerCLI string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var e env
	var err error
	for _, r := range strings.Split(runnerBin, ",") {
		abs, err := filepath.Abs(r)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("runner binary: %w (make build)", err)
		}
		e.runners = append(e.runners, abs)
	}
	if e.docker, err = findDocker(dockerCLI); err != nil {
		return err
	}
	if e.tmp, err = os.MkdirTemp("", "af-bench-overhead-"); err != nil {
		return err
	}
	defer os.RemoveAll(e.tmp)

	// A data root of its own: a shared one would carry cache between runs
	// of this benchmark in ways the two pipelines do not see alike.
	if e.daemon, err = dockerd.FromEnv(ctx, dockerd.Options{}); err != nil {
		return err
	}
	defer e.daemon.Stop()
	if err := dockerd.ImportBusybox(ctx, e.daemon.Host(), baseImage); err != nil {
		return err
	}
	if e.reg, err = registry.Start(ctx, registry.Options{User: "af-push", Password: registryPass}); err != nil {
		return err
	}
	defer e.reg.Stop()
	if e.git, err = gitserver.Start(ctx, gitserver.Options{Token: gitToken}); err != nil {
		return err
	}
	defer e.git.Stop()
	if e.sink, err = callbacksink.Start(ctx, callbacksink.Options{Secret: []byte(callbackSecret)}); err != nil {
		return err
	}
	defer e.sink.Stop()
	if e.repo, err = e.git.CreateRepo("bench/reference"); err != nil {
		return err
	}
	start := time.Now()
	if _, err := e.repo.Commit("main", bigrepo.Files(bigrepo.Reference, 1, baseImage), "reference app"); err != nil {
		return err
	}
	fmt.Printf("repository: %d files, ~%d MB (generated and committed in %s)\n",
		bigrepo.Reference.Files, bigrepo.Reference.TotalBytes>>20, time.Since(start).Round(time.Millisecond))

	e.dockerConfig = filepath.Join(e.tmp, "docker-config")
	login := exec.CommandContext(ctx, e.docker, "--host", e.daemon.Host(), "--config", e.dockerConfig,
		"login", "-u", e.reg.User(), "--password-stdin", e.reg.Addr())
	login.Stdin = strings.NewReader(e.reg.Password())
	if out, err := login.CombinedOutput(); err != nil {
		return fmt.Errorf("docker login: %v\n%s", err, out)
	}

	// One unmeasured run of each warms what both share (the base image's
	// layer in the registry, the daemon's first BuildKit session).
	pipelines := []string{"raw"}
	for i := range e.runners {
		pipelines = append(pipelines, runnerLabel(e.runners, i))
	}
	runs := map[string][]sample{}
	for i := -1; i < n; i++ {
		// Rotate the order, so no pipeline always goes first or last.
		order := slices.Clone(pipelines)
		if i >= 0 {
			k := i % len(order)
			order = append(order[k:], order[:k]...)
		}
		for _, which := range order {
			sha, err := e.repo.Update("main", map[string]gitserver.File{
				"src/version.ts": gitserver.Text(fmt.Sprintf("export const build = %q;\n", fmt.Sprint(which, i, rand.Uint64()))),
			}, fmt.Sprintf("%s run %d", which, i))
			if err != nil {
				return err
			}
			var s sample
			if which == "raw" {
				s, err = e.runRaw(ctx, sha, i)
			} else {
				s, err = e.runRunner(ctx, e.runners[slices.Index(pipelines, which)-1], sha, i)
			}
			if err != nil {
				return fmt.Errorf("%s run %d: %w", which, i, err)
			}
			if i < 0 {
				fmt.Printf("warm-up %-8s %s\n", which, s.total.Round(time.Millisecond))
				continue
			}
			fmt.Printf("run %d %-8s %8s (cpu %s)  %s\n", i, which, s.total.Round(time.Millisecond), s.cpu.Round(time.Millisecond), s.phaseLine())
			runs[which] = append(runs[which], s)
		}
	}
	for _, p := range pipelines[1:] {
		fmt.Printf("\n== %s\n", p)
		report(os.Stdout, runs[p], runs["raw"])
	}
	return nil
}

// runnerLabel names the i-th runner binary: "runner" alone, else its file
// name (or position) so two builds of the runner can be told apart.
func runnerLabel(runners []string, i int) string {
	if len(runners) == 1 {
		return "runner"
	}
	name := filepath.Base(runners[i])
	for j, r := range runners {
		if j != i && filepath.Base(r) == name {
			return fmt.Sprintf("runner%d", i+1)
		}
	}
	return name
}

func findDocker(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	// Debian's docker.io CLI builds with BuildKit by itself; newer CLIs
	// need the buildx plugin, which cannot be installed here.
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker", nil
	}
	return exec.LookPath("docker")
}

func (s sample) phaseLine() string {
	var parts []string
	for _, p := range s.phases {
		parts = append(parts, fmt.Sprintf("%s %s", p[0], p[1].(time.Duration).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

func (e *env) runRunner(ctx context.Context, runner, sha string, i int) (sample, error) {
	id := fmt.Sprintf("bench-%d-%s", i+1, sha[:8])
	tag := e.reg.Ref("bench/runner", sha[:12])
	cmd := exec.CommandContext(ctx, runner)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + e.tmp, "TMPDIR=" + e.tmp,
		"BUILD_JOB_ID=" + id,
		"CALLBACK_URL=" + e.sink.URL(),
		"CALLBACK_TOKEN=" + token.Mint([]byte(callbackSecret), id, time.Now()),
		"REPO_CLONE_URL=" + e.repo.CloneURL(gitToken),
		"REPO_REF=" + sha,
		"IMAGE_TAG=" + tag,
		"GHCR_USER=" + e.reg.User(),
		"GHCR_TOKEN=" + e.reg.Password(),
		"REPO_SOURCE_URL=" + e.repo.SourceURL(),
		"REPO_OWNER=" + e.repo.Owner(),
		"REPO_NAME=" + e.repo.Name(),
		"DOCKER_HOST=" + e.daemon.Host(),
		"BUILD_NETWORK=host",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	total := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("runner: %v\n%s", err, tail(out.String(), 3000))
	}
	d, ok := e.sink.Terminal(id)
	if !ok || d.Status != "SUCCEEDED" {
		return sample{}, fmt.Errorf("runner exited 0 without SUCCEEDED\n%s", tail(out.String(), 3000))
	}
	var timings map[string]int64
	raw, _ := json.Marshal(d.Payload["phaseTimingsMs"])
	_ = json.Unmarshal(raw, &timings)
	// The run ends, as the platform sees it, when SUCCEEDED arrives: it
	// deploys then. The runner's exit after that (removing its work
	// directory; a pod's is simply discarded) is shown, not counted, as
	// the raw pipeline's clean-up is not either.
	reported := d.At.Sub(start)
	s := sample{total: reported, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	var sum time.Duration
	for _, p := range []string{"engine", "clone", "detect", "plan", "build", "push"} {
		if ms, ok := timings[p]; ok {
			s.phases = append(s.phases, [2]any{p, time.Duration(ms) * time.Millisecond})
			sum += time.Duration(ms) * time.Millisecond
		}
	}
	// What no phase timing covers: start-up until the first RUNNING
	// callback, then the terminal report.
	first := e.sink.Deliveries(id)[0].At.Sub(start)
	s.phases = append(s.phases,
		[2]any{"startup", first},
		[2]any{"report", reported - sum - first},
		[2]any{"(exit after SUCCEEDED)", total - reported})
	return s, nil
}

func (e *env) runRaw(ctx context.Context, sha string, i int) (sample, error) {
	dir := filepath.Join(e.tmp, fmt.Sprintf("raw-%d-%s", i+1, sha[:8]))
	defer os.RemoveAll(dir)
	tag := e.reg.Ref("bench/raw", sha[:12])
	gitEnv := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "HOME="+e.tmp, "GIT_CONFIG_NOSYSTEM=1")
	dockerEnv := append(os.Environ(), "DOCKER_BUILDKIT=1", "DOCKER_CONFIG="+e.dockerConfig)
	steps := []struct {
		phase string
		env   []string
		argv  []string
	}{
		{"fetch", gitEnv, []string{"git", "init", "-q", dir}},
		{"fetch", gitEnv, []string{"git", "-C", dir, "fetch", "-q", "--depth", "1", "--no-tags", e.repo.CloneURL(gitToken), sha}},
		{"checkout", gitEnv, []string{"git", "-C", dir, "checkout", "-q", "FETCH_HEAD"}},
		{"build", dockerEnv, []string{e.docker, "--host", e.daemon.Host(), "build", "-q", "--network", "host", "-t", tag, dir}},
		{"push", dockerEnv, []string{e.docker, "--host", e.daemon.Host(), "push", "-q", tag}},
	}
	s := sample{}
	start := time.Now()
	for _, st := range steps {
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, st.argv[0], st.argv[1:]...)
		cmd.Env = st.env
		if out, err := cmd.CombinedOutput(); err != nil {
			return sample{}, fmt.Errorf("%s: %v\n%s", strings.Join(st.argv[:2], " "), err, tail(string(out), 2000))
		}
		s.cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		d := time.Since(t0)
		if n := len(s.phases); n > 0 && s.phases[n-1][0] == st.phase {
			s.phases[n-1][1] = s.phases[n-1][1].(time.Duration) + d
		} else {
			s.phases = append(s.phases, [2]any{st.phase, d})
		}
	}
	s.total = time.Since(start)
	return s, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func phaseMedians(runs []sample) [][2]any {
	var names []string
	byName := map[string][]time.Duration{}
	for _, r := range runs {
		for _, p := range r.phases {
			name := p[0].(string)
			if _, ok := byName[name]; !ok {
				names = append(names, name)
			}
			byName[name] = append(byName[name], p[1].(time.Duration))
		}
	}
	var out [][2]any
	for _, n := range names {
		out = append(out, [2]any{n, median(byName[n])})
	}
	return out
}

func report(w io.Writer, runnerRuns, rawRuns []sample) {
	pick := func(rs []sample, f func(sample) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range rs {
			out = append(out, f(r))
		}
		return out
	}
	total := func(s sample) time.Duration { return s.total }
	cpu := func(s sample) time.Duration { return s.cpu }
	rm, wm := median(pick(runnerRuns, total)), median(pick(rawRuns, total))
	rc, wc := median(pick(runnerRuns, cpu)), median(pick(rawRuns, cpu))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "pipeline\tmedian total\tmedian client cpu\tmedian phases\n")
	fmt.Fprintf(tw, "runner\t%s\t%s\t%s\n", rm.Round(time.Millisecond), rc.Round(time.Millisecond), sample{phases: phaseMedians(runnerRuns)}.phaseLine())
	fmt.Fprintf(tw, "raw (git + docker CLI)\t%s\t%s\t%s\n", wm.Round(time.Millisecond), wc.Round(time.Millisecond), sample{phases: phaseMedians(rawRuns)}.phaseLine())
	tw.Flush()
	if wm > 0 && wc > 0 {
		fmt.Fprintf(w, "ratio runner/raw: %.3f (goal: at most 1.05; %d runs each, medians; the runner until SUCCEEDED)\n", float64(rm)/float64(wm), len(runnerRuns))
		fmt.Fprintf(w, "client cpu runner/raw: %.2f (%s more per build)\n", float64(rc)/float64(wc), (rc - wc).Round(time.Millisecond))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
