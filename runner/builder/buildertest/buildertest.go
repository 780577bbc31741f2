// Package buildertest is the behaviour every builder.Builder must have, run
// against each real backend: the Docker Engine (dockerd) and buildkitd, with
// a real registry. Each backend's test package calls Run with a harness that
// starts fresh daemons.
package buildertest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
	"github.com/alternatefutures/af-builder/runner/builder"
	"github.com/alternatefutures/af-builder/runner/failure"
)

// Harness gives the suite builders and the registry they push to.
type Harness struct {
	// NewBuilder starts a builder on a daemon of its own with an empty
	// store (a new builder pod), stopped when t ends, which can pull
	// BaseImage.
	NewBuilder func(t *testing.T) builder.Builder
	// Registry is where images and caches go; its storage is read to
	// check what was pushed byte by byte.
	Registry *registry.Registry
	// Other is a second registry whose credentials the builds do not have:
	// it refuses their pushes.
	Other *registry.Registry
	// BaseImage is a busybox image every builder can use in FROM.
	BaseImage string
	// ExportsIntermediateStages is true when the backend's cache export
	// keeps the stages that are not the final image (mode=max).
	ExportsIntermediateStages bool
}

// Run runs the suite; each test gets the harness.
func Run(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"BuildsAndPushesWithTheRegistrysDigestAndLabels", buildsAndPushes},
		{"FailingRunStepIsTheUsersWithItsOutput", failingRunStep},
		{"CancelStopsTheRunningStepOnTheDaemon", cancelStopsTheStep},
		{"RefusedPushIsTheInfrastructures", refusedPush},
		{"NewBuilderIsWarmFromTheRegistryCache", newBuilderIsWarm},
		{"NewBranchStartsWarmFromTheDefaultBranch", newBranchStartsWarm},
		{"RefusedCacheExportStillSucceeds", refusedCacheExport},
		{"CacheMountsReachANewBuilder", cacheMountsReachANewBuilder},
		{"CarriedMountsStayOnTheirBuilder", carriedMountsStayOnTheirBuilder},
		{"LinkedCopiesOnlyWhereTheDaemonTakesThem", linkedCopies},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
	t.Run("NoSecretInAnyPushedBlob", func(t *testing.T) { noSecretInBlobs(t, h) })
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// app writes a build context with files and a Dockerfile.
func app(t *testing.T, dockerfile string, files map[string]string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	files["Dockerfile"] = dockerfile
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var seq int

// request builds dir into a new repository of the harness registry.
func request(t *testing.T, h Harness, dir, repo string) builder.Request {
	seq++
	return builder.Request{
		ContextDir:     dir,
		DockerfileDir:  dir,
		DockerfileName: "Dockerfile",
		Tag:            h.Registry.Ref(repo, "v1"),
		Labels:         map[string]string{"org.opencontainers.image.revision": "0123456789abcdef"},
		NetworkMode:    "host",
		BuildID:        fmt.Sprintf("suite-%d-%d", time.Now().UnixNano(), seq),
		RegistryHost:   h.Registry.Addr(),
		RegistryUser:   h.Registry.User(),
		RegistryToken:  h.Registry.Password(),
	}
}

// buildAndPush runs Build, Push and then ExportCache, as the runner does,
// fails the test on an error, and returns the result with the build's
// output and the push's and cache export's together (an engine exports its
// inline cache with the push).
func buildAndPush(t *testing.T, b builder.Builder, req builder.Request) (builder.Result, string, string) {
	t.Helper()
	ctx := testCtx(t, 5*time.Minute)
	var out bytes.Buffer
	res, err := b.Build(ctx, req, &out)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, out.String())
	}
	var pushOut bytes.Buffer
	if _, err := b.Push(ctx, req, &pushOut); err != nil {
		t.Fatalf("Push: %v\nbuild:\n%s\npush:\n%s", err, out.String(), pushOut.String())
	}
	var cacheOut bytes.Buffer
	b.ExportCache(ctx, req, &cacheOut)
	t.Logf("build output:\n%s\npush output:\n%s\ncache export output:\n%s", out.String(), pushOut.String(), cacheOut.String())
	return res, out.String(), pushOut.String() + cacheOut.String()
}

func buildsAndPushes(t *testing.T, h Harness) {
	dir := app(t, "FROM "+h.BaseImage+"\nCOPY hello.txt /hello.txt\nRUN echo built-at-step-two && cat /hello.txt > /copy.txt\n",
		map[string]string{"hello.txt": "hello from the suite\n"})
	req := request(t, h, dir, "suite/plain")
	req.Platform = "linux/amd64"
	b := h.NewBuilder(t)
	ctx := testCtx(t, 5*time.Minute)
	var out bytes.Buffer
	res, err := b.Build(ctx, req, &out)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, out.String())
	}
	var pushOut bytes.Buffer
	digest, err := b.Push(ctx, req, &pushOut)
	if err != nil {
		t.Fatalf("Push: %v\n%s", err, pushOut.String())
	}
	got := out.String()
	for _, want := range []string{"[2/3] COPY hello.txt /hello.txt", "RUN echo built-at-step-two", "built-at-step-two\n", " DONE "} {
		if !strings.Contains(got, want) {
			t.Errorf("build output lacks %q:\n%s", want, got)
		}
	}
	if res.Platform != "linux/amd64" {
		t.Errorf("built for %q, want the target platform linux/amd64 read back from the image", res.Platform)
	}
	if res.Steps.Total != 2 || res.Steps.Cached != 0 {
		t.Errorf("steps = %+v, want 2 steps, none cached, on a new builder", res.Steps)
	}
	stored, err := h.Registry.ManifestDigest(ctx, "suite/plain", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if digest != stored {
		t.Errorf("Push returned %s, the registry stores %s", digest, stored)
	}
	cfg, err := h.Registry.ImageConfig(ctx, "suite/plain", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Labels["org.opencontainers.image.revision"] != "0123456789abcdef" {
		t.Errorf("labels = %v, want the revision label", cfg.Labels)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform = %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
	}
}

func failingRunStep(t *testing.T, h Harness) {
	dir := app(t, "FROM "+h.BaseImage+"\nRUN echo about-to-fail && exit 3\n", map[string]string{})
	b := h.NewBuilder(t)
	var out bytes.Buffer
	_, err := b.Build(testCtx(t, 3*time.Minute), request(t, h, dir, "suite/failing"), &out)
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Class != failure.User {
		t.Fatalf("err = %v, want a user failure", err)
	}
	if fe.Phase != "" {
		t.Errorf("phase %q stamped by the backend; only the pipeline names phases", fe.Phase)
	}
	if !strings.Contains(fe.Message, "exit code: 3") || strings.Contains(fe.Message, "rpc error") {
		t.Errorf("message %q, want the daemon's words about exit code 3 and no transport noise", fe.Message)
	}
	if got := out.String(); !strings.Contains(got, "about-to-fail") || !strings.Contains(got, "ERROR") {
		t.Errorf("output does not show the failing step:\n%s", got)
	}
}

func cancelStopsTheStep(t *testing.T, h Harness) {
	marker := fmt.Sprint(1000 + time.Now().UnixNano()%8000)
	dir := app(t, "FROM "+h.BaseImage+"\nRUN echo sleeping-now && sleep "+marker+"\n", map[string]string{})
	b := h.NewBuilder(t)
	ctx, cancel := context.WithCancelCause(testCtx(t, 3*time.Minute))
	errc := make(chan error, 1)
	go func() {
		_, err := b.Build(ctx, request(t, h, dir, "suite/cancel"), io.Discard)
		errc <- err
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for !sleepRunning(marker) {
		if time.Now().After(deadline) {
			t.Fatal("the sleep step never started")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel(errors.New("SIGTERM"))
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Build succeeded though cancelled")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Build did not return within 20s of the cancel")
	}
	for end := time.Now().Add(10 * time.Second); sleepRunning(marker); {
		if time.Now().After(end) {
			t.Fatal("the RUN step still runs on the daemon 10s after the cancel")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sleepRunning reports whether a process "sleep <marker>" runs on this
// machine (the daemons are local).
func sleepRunning(marker string) bool {
	ds, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range ds {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "sleep\x00"+marker) {
			return true
		}
	}
	return false
}

func refusedPush(t *testing.T, h Harness) {
	dir := app(t, "FROM "+h.BaseImage+"\nRUN echo refused > /r\n", map[string]string{})
	req := request(t, h, dir, "suite/refused")
	// The base image's registry is the one we have credentials for; the
	// image goes to another one.
	req.Tag = h.Other.Ref("suite/refused", "v1")
	b := h.NewBuilder(t)
	ctx := testCtx(t, 3*time.Minute)
	if _, err := b.Build(ctx, req, io.Discard); err != nil {
		t.Fatalf("Build: %v", err)
	}
	var out bytes.Buffer
	_, err := b.Push(ctx, req, &out)
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Class != failure.Infrastructure {
		t.Fatalf("err = %v, want an infrastructure failure (the platform mints push credentials)", err)
	}
	if msg := strings.ToLower(fe.Message); !strings.Contains(msg, "credentials") && !strings.Contains(msg, "unauthorized") {
		t.Errorf("message %q does not say the registry refused the credentials", fe.Message)
	}
}

// depsApp is an app whose dependency install is its own step, before the
// source is copied: the shape of every template.
const depsDockerfile = `FROM %s AS deps
COPY deps.txt /app/deps.txt
RUN echo installing-dependencies && cat /app/deps.txt > /app/installed
FROM %s
COPY --from=deps /app/installed /app/installed
COPY src.txt /app/src.txt
RUN cat /app/src.txt /app/installed > /app/out
`

// finalStageDockerfile has the dependency install in the final image, all
// an inline cache can carry.
const finalStageDockerfile = `FROM %s
COPY deps.txt /app/deps.txt
RUN echo installing-dependencies && cat /app/deps.txt > /app/installed
COPY src.txt /app/src.txt
RUN cat /app/src.txt /app/installed > /app/out
`

func depsApp(t *testing.T, h Harness, src string) string {
	df := finalStageDockerfile
	if h.ExportsIntermediateStages {
		df = depsDockerfile
	}
	return app(t, strings.ReplaceAll(df, "%s", h.BaseImage), map[string]string{
		"deps.txt": "left-pad@1.3.0\n",
		"src.txt":  src,
	})
}

// cachedLine reports whether out shows the step containing step as CACHED.
func cachedLine(out, step string) bool {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.Contains(l, step) || !strings.HasPrefix(l, "#") {
			continue
		}
		id, _, _ := strings.Cut(l, " ")
		for _, m := range lines[i+1:] {
			if m == id+" CACHED" {
				return true
			}
		}
	}
	return false
}

func newBuilderIsWarm(t *testing.T, h Harness) {
	cacheRef := h.Registry.Ref("suite/warm", "buildcache")
	req := request(t, h, depsApp(t, h, "version one\n"), "suite/warm")
	req.Cache = builder.Cache{Import: []string{cacheRef}, Export: cacheRef}
	cold, _, cacheOut := buildAndPush(t, h.NewBuilder(t), req)
	if cold.Steps.Cached != 0 {
		t.Errorf("cold build on a new builder: %s, want none cached", cold.Steps)
	}
	if !strings.Contains(cacheOut, "exported to "+cacheRef) {
		t.Errorf("the cache export's output does not say the cache was exported:\n%s", cacheOut)
	}

	// One source file changes; a brand-new builder builds it.
	req2 := request(t, h, depsApp(t, h, "version two\n"), "suite/warm")
	req2.Cache = req.Cache
	warm, out, _ := buildAndPush(t, h.NewBuilder(t), req2)
	if !cachedLine(out, "RUN echo installing-dependencies") {
		t.Errorf("the dependency install was not CACHED on the new builder:\n%s", out)
	}
	if cachedLine(out, "RUN cat /app/src.txt") {
		t.Errorf("the step after the changed file was CACHED:\n%s", out)
	}
	if !warm.Steps.CacheHit() || warm.Steps.Cached < 2 {
		t.Errorf("warm build: %s, want the dependency steps cached", warm.Steps)
	}
}

func newBranchStartsWarm(t *testing.T, h Harness) {
	mainRef := h.Registry.Ref("suite/branches", "buildcache")
	branchRef := h.Registry.Ref("suite/branches", "buildcache-feature-x-0a1b2c3d")
	req := request(t, h, depsApp(t, h, "main\n"), "suite/branches")
	req.Cache = builder.Cache{Import: []string{mainRef}, Export: mainRef}
	buildAndPush(t, h.NewBuilder(t), req)
	ctx := testCtx(t, time.Minute)
	mainDigest, err := h.Registry.ManifestDigest(ctx, "suite/branches", "buildcache")
	if err != nil {
		t.Fatal(err)
	}

	req2 := request(t, h, depsApp(t, h, "feature\n"), "suite/branches")
	req2.Tag = h.Registry.Ref("suite/branches", "feature")
	req2.Cache = builder.Cache{Import: []string{branchRef, mainRef}, Export: branchRef}
	res, out, _ := buildAndPush(t, h.NewBuilder(t), req2)
	if !cachedLine(out, "RUN echo installing-dependencies") || !res.Steps.CacheHit() {
		t.Errorf("a new branch's first build was not warm from the default branch (%s):\n%s", res.Steps, out)
	}
	if _, err := h.Registry.ManifestDigest(ctx, "suite/branches", "buildcache-feature-x-0a1b2c3d"); err != nil {
		t.Errorf("the branch's cache was not exported: %v", err)
	}
	if d, err := h.Registry.ManifestDigest(ctx, "suite/branches", "buildcache"); err != nil || d != mainDigest {
		t.Errorf("the default branch's cache changed (%s -> %s, %v): a branch must export only its own", mainDigest, d, err)
	}
}

// mountDockerfile's build step says what its cache mount held from an
// earlier build, then leaves this build's source there.
const mountDockerfile = `FROM %s
COPY src.txt /src.txt
RUN --mount=type=cache,id=suite-carried,target=/carried echo "the mount held: $(cat /carried/stamp 2>/dev/null || echo nothing)"; cp /src.txt /carried/stamp
`

// mountsBuild builds mountDockerfile with src, carrying its mount through
// the images of repo, on b or else a new builder; it returns the mounts it
// carried, the build's output, and the push's and export's together.
func mountsBuild(t *testing.T, h Harness, b builder.Builder, repo, src string) (mounts builder.Mounts, out, cacheOut string) {
	cacheRef := h.Registry.Ref(repo, "buildcache")
	mounts = builder.Mounts{
		Carried: []builder.Mount{{ID: "suite-carried-" + strings.ReplaceAll(repo, "/", "-"), Path: "/carried"}},
		Helper:  h.BaseImage,
		Import:  []string{h.Registry.Ref(repo, "buildcache-mounts")},
		Export:  h.Registry.Ref(repo, "buildcache-mounts"),
	}
	if b == nil {
		b = h.NewBuilder(t)
	}
	df := strings.ReplaceAll(fmt.Sprintf(mountDockerfile, h.BaseImage), "suite-carried", mounts.Carried[0].ID)
	req := request(t, h, app(t, df, map[string]string{"src.txt": src}), repo)
	req.Cache = builder.Cache{Import: []string{cacheRef}, Export: cacheRef, Mounts: mounts}
	_, out, cacheOut = buildAndPush(t, b, req)
	return mounts, out, cacheOut
}

func cacheMountsReachANewBuilder(t *testing.T, h Harness) {
	build := func(src string) (builder.Mounts, string, string) {
		return mountsBuild(t, h, nil, "suite/mounts", src)
	}
	mounts, out, cacheOut := build("version one")
	if !strings.Contains(out, "the mount held: nothing") {
		t.Errorf("the first build's mount was not empty:\n%s", out)
	}

	// A brand-new builder, the next commit.
	_, out, _ = build("version two")
	if !strings.Contains(cacheOut, "cache mounts: exported to "+mounts.Export+"\n") {
		t.Errorf("the export does not say the mounts were exported:\n%s", cacheOut)
	}
	if !strings.Contains(out, "the mount held: version one") {
		t.Errorf("the build step on a new builder did not find the last build's mount:\n%s", out)
	}
	if !strings.Contains(out, "cache mounts: /carried: restored") {
		t.Errorf("the build log does not say the mount was restored:\n%s", out)
	}
}

// On the builder that filled the mount, the restore keeps it, and the
// build step that follows gets that mount, not a new one: BuildKit gives a
// step that asks for a mount still held elsewhere (by the restore's
// finished build, for a moment) a new, empty one.
func carriedMountsStayOnTheirBuilder(t *testing.T, h Harness) {
	b := h.NewBuilder(t)
	mountsBuild(t, h, b, "suite/mounts-kept", "version one")
	_, out, _ := mountsBuild(t, h, b, "suite/mounts-kept", "version two")
	if !strings.Contains(out, "cache mounts: /carried: kept this builder's own") {
		t.Errorf("the restore did not keep the builder's own mount:\n%s", out)
	}
	if !strings.Contains(out, "the mount held: version one") {
		t.Errorf("the build step after the restore did not find its builder's mount:\n%s", out)
	}
}

func refusedCacheExport(t *testing.T, h Harness) {
	req := request(t, h, depsApp(t, h, "refused cache\n"), "suite/nocache")
	refused := h.Other.Ref("suite/nocache", "buildcache")
	req.Cache = builder.Cache{Import: []string{refused}, Export: refused}
	b := h.NewBuilder(t)
	ctx := testCtx(t, 5*time.Minute)
	var out, pushOut, cacheOut bytes.Buffer
	if _, err := b.Build(ctx, req, &out); err != nil {
		t.Fatalf("Build with an unusable cache: %v\n%s", err, out.String())
	}
	digest, err := b.Push(ctx, req, &pushOut)
	if err != nil {
		t.Fatalf("Push: %v\n%s", err, pushOut.String())
	}
	b.ExportCache(ctx, req, &cacheOut)
	if stored, err := h.Registry.ManifestDigest(ctx, "suite/nocache", "v1"); err != nil || stored != digest {
		t.Errorf("image not pushed as reported: %s vs %s (%v)", digest, stored, err)
	}
	exportOut := pushOut.String() + cacheOut.String()
	if n := strings.Count(exportOut, "export to "+refused+" failed"); n != 1 {
		t.Errorf("%d lines say the cache export failed, want exactly 1:\n%s", n, exportOut)
	}
}

// linkedCopies holds WaitReady's CopyLink to what the daemon does with the
// runtime stage the templates write when it is set (the Next.js one: the
// app copied linked, then its .next/cache, made by a stage of its own for
// the app user, copied linked): a daemon that says it takes COPY --link
// builds it, with that directory the app user's and every directory above
// it still root's; one that says it does not refuses it.
func linkedCopies(t *testing.T, h Harness) {
	b := h.NewBuilder(t)
	d, err := b.WaitReady(testCtx(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	dir := app(t, "FROM "+h.BaseImage+" AS build\nWORKDIR /app\nCOPY app.txt ./\n"+
		"RUN --mount=type=cache,id=suite-linked,target=/app/.next/cache echo built > .next/out.txt\n\n"+
		"FROM "+h.BaseImage+" AS next-cache\nRUN mkdir -p /app/.next/cache && chown 10001:10001 /app/.next/cache\n\n"+
		"FROM "+h.BaseImage+"\nWORKDIR /app\nCOPY --link --from=build /app ./\n"+
		"COPY --link --from=next-cache /app/.next/ ./.next/\nUSER 10001:10001\n",
		map[string]string{"app.txt": "the app\n"})
	req := request(t, h, dir, "suite/linked")
	if !d.CopyLink {
		var out bytes.Buffer
		_, err := b.Build(testCtx(t, 2*time.Minute), req, &out)
		if err == nil {
			t.Fatalf("%s says it takes no COPY --link, yet built a Dockerfile using it:\n%s", d.Line, out.String())
		}
		if !strings.Contains(err.Error()+out.String(), "link") {
			t.Errorf("%s refused the Dockerfile for another reason than --link: %v\n%s", d.Line, err, out.String())
		}
		return
	}
	buildAndPush(t, b, req)
	files, err := h.Registry.ImageFiles(testCtx(t, time.Minute), "suite/linked", "v1")
	if err != nil {
		t.Fatal(err)
	}
	for name, uid := range map[string]int{"app": 0, "app/.next": 0, "app/app.txt": 0, "app/.next/out.txt": 0, "app/.next/cache": 10001} {
		switch f := files[name]; {
		case f == nil:
			t.Errorf("the image has no /%s", name)
		case f.Uid != uid:
			t.Errorf("/%s belongs to %d, want %d", name, f.Uid, uid)
		}
	}
	if f := files["app/.next/cache"]; f != nil && f.Typeflag != tar.TypeDir {
		t.Errorf("/app/.next/cache is of type %c, want a directory", f.Typeflag)
	}
}

// noSecretInBlobs reads every blob the registry stores, decompressed, and
// looks for the push credential. A marker the suite's apps do contain must
// be found, or the scan proves nothing.
func noSecretInBlobs(t *testing.T, h Harness) {
	blobs, found := 0, false
	err := h.Registry.StoredBlobs(func(p string, b []byte) error {
		blobs++
		if bytes.Contains(b, []byte("left-pad@1.3.0")) {
			found = true
		}
		if bytes.Contains(b, []byte(h.Registry.Password())) {
			t.Errorf("blob %s contains the registry password", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("the scan of %d blobs did not find the apps' own content: it cannot see a secret either", blobs)
	}
	t.Logf("scanned %d blobs", blobs)
}
