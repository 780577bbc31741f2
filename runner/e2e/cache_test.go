package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra/appcheck"
	"github.com/alternatefutures/af-builder/internal/testinfra/baseimage"
	"github.com/alternatefutures/af-builder/internal/testinfra/buildkitd"
	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
	gs "github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/realapps"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
)

// registryBase is the busybox base image in the test registry, where a
// buildkitd (and a fresh dockerd) pulls its FROM images from.
var registryBase = struct {
	once sync.Once
	ref  string
	err  error
}{}

func baseInRegistry(t *testing.T) string {
	t.Helper()
	registryBase.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		d, err := buildkitd.Start(ctx, buildkitd.Options{})
		if err != nil {
			registryBase.err = err
			return
		}
		defer d.Stop()
		ref := env.registry.Ref("base/busybox", "1")
		registryBase.err = buildkitd.PushBusybox(ctx, d, ref, env.registry.User(), env.registry.Password())
		registryBase.ref = ref
	})
	if registryBase.err != nil {
		t.Fatal(registryBase.err)
	}
	return registryBase.ref
}

// sampleApp is the demo's sample app (a dependency step with a cache mount,
// a build step, a busybox httpd), FROM the registry's base, with VERSION set.
func sampleApp(t *testing.T, version string) map[string]gs.File {
	t.Helper()
	base := baseInRegistry(t)
	dir := filepath.Join("..", "..", "internal", "demo", "sampleapp")
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]gs.File{}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = gs.Text(strings.ReplaceAll(string(b), "af-demo/busybox:1", base))
	}
	files["VERSION"] = gs.Text(version + "\n")
	return files
}

// newBuilder starts a brand-new daemon for backend (an empty buildkitd state
// dir or dockerd data root: a new builder pod) and points b at it.
func newBuilder(t *testing.T, backend string, b *build) {
	t.Helper()
	// The daemon lives until the test ends: Start stops it when its
	// context ends.
	ctx := context.Background()
	b.Env["BUILD_BACKEND"] = backend
	switch backend {
	case "buildkit":
		d, err := buildkitd.Start(ctx, buildkitd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Stop() })
		b.Env["BUILDKIT_HOST"] = d.Address()
		delete(b.Env, "DOCKER_HOST")
	default:
		d, err := dockerd.Start(ctx, dockerd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Stop() })
		b.Env["DOCKER_HOST"] = d.Host()
	}
}

func mustSucceed(t *testing.T, res result) {
	t.Helper()
	if res.ExitCode != 0 || res.Terminals != 1 || res.Terminal["status"] != "SUCCEEDED" {
		t.Fatalf("exit %d, %d terminal callbacks, terminal %v", res.ExitCode, res.Terminals, res.Terminal)
	}
}

// depsCached reports whether the log shows the sample app's dependency
// install as CACHED.
func depsCached(logs string) bool { return stepsCached(logs, "sh install-deps.sh") }

// stepsCached reports whether the build log shows at least one step whose
// header contains needle, and every such step CACHED.
func stepsCached(logs, needle string) bool {
	lines := strings.Split(logs, "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		_, rest, ok := strings.Cut(l, "build: ")
		if !ok || !strings.Contains(rest, needle) || !strings.HasPrefix(rest, "#") || !strings.Contains(rest, "] RUN ") {
			continue
		}
		id, header, _ := strings.Cut(rest, " ")
		if seen[id] {
			continue // BuildKit shows a step again when it pulls its layers
		}
		seen[id] = true
		if !slices.Contains(lines, "build: "+id+" CACHED") &&
			!slices.Contains(lines, "build: cache: "+header+": CACHED (layers pulled from the registry cache, not run)") {
			return false
		}
	}
	return len(seen) > 0
}

// TestRegistryCacheMakesANewBuilderWarm is the BuildKit backend's promise on
// the sample app, whose dependency install is in a build stage the final
// image does not contain: only a mode=max cache export keeps it. (The docker
// backend's inline cache cannot; the builder suite checks what it does keep.)
func TestRegistryCacheMakesANewBuilderWarm(t *testing.T) {
	for _, backend := range []string{"buildkit"} {
		t.Run(backend, func(t *testing.T) {
			repo, shas := newRepo(t, sampleApp(t, "1"), sampleApp(t, "2"))
			branchSHA, err := repo.Commit("feature/x", sampleApp(t, "3"), "a branch")
			if err != nil {
				t.Fatal(err)
			}

			cold := newBuild(t, repo, shas[0])
			cold.Env["CACHE_BRANCH"], cold.Env["CACHE_DEFAULT_BRANCH"] = "main", "main"
			newBuilder(t, backend, cold)
			res := cold.run(t)
			mustSucceed(t, res)
			if res.Terminal["cacheHit"] == true {
				t.Errorf("the first build of a new repository reports a cache hit: %v", res.Terminal)
			}

			// One source file changed; builder 2 has never seen this app.
			warm := newBuild(t, repo, shas[1])
			warm.Env["CACHE_BRANCH"], warm.Env["CACHE_DEFAULT_BRANCH"] = "main", "main"
			newBuilder(t, backend, warm)
			res = warm.run(t)
			mustSucceed(t, res)
			logs, _ := res.Terminal["logs"].(string)
			if !depsCached(logs) {
				t.Errorf("the dependency install was not CACHED on the new builder:\n%s", logs)
			}
			if res.Terminal["cacheHit"] != true || res.Terminal["cachedSteps"].(float64) < 2 {
				t.Errorf("SUCCEEDED says cacheHit %v, cachedSteps %v", res.Terminal["cacheHit"], res.Terminal["cachedSteps"])
			}
			if body := serveFromRegistry(t, warm.Tag); !strings.Contains(body, "2") {
				t.Errorf("the warm build's image serves %q, want version 2", body)
			}

			// A new branch's first build starts from main's cache.
			branch := newBuild(t, repo, branchSHA)
			branch.Env["CACHE_BRANCH"], branch.Env["CACHE_DEFAULT_BRANCH"] = "feature/x", "main"
			newBuilder(t, backend, branch)
			res = branch.run(t)
			mustSucceed(t, res)
			logs, _ = res.Terminal["logs"].(string)
			if !depsCached(logs) {
				t.Errorf("a new branch's first build was not warm from main's cache:\n%s", logs)
			}

			assertNoSecretInBlobs(t)
		})
	}
}

func TestRegistryThatRefusesTheCachePushStillSucceeds(t *testing.T) {
	for _, backend := range []string{"docker", "buildkit"} {
		t.Run(backend, func(t *testing.T) {
			repo, shas := newRepo(t, sampleApp(t, "1"))
			refused := newBuild(t, repo, shas[0])
			refused.Env["CACHE_REF"] = otherRegistry(t).Ref("caches/app", "buildcache")
			reported := filepath.Join(t.TempDir(), "reported")
			refused.Env["REPORTED_FILE"] = reported
			newBuilder(t, backend, refused)
			res := refused.run(t)
			mustSucceed(t, res)
			// The executor's sign that only the export is left, made once
			// SUCCEEDED was delivered.
			if fi, err := os.Stat(reported); err != nil {
				t.Errorf("REPORTED_FILE was not created after SUCCEEDED: %v", err)
			} else if last := res.Deliveries[len(res.Deliveries)-1]; fi.ModTime().Before(last.At.Add(-time.Second)) {
				t.Errorf("REPORTED_FILE made at %s, before SUCCEEDED arrived at %s", fi.ModTime(), last.At)
			}
			if n := strings.Count(res.Stdout, "cache: export to "+refused.Env["CACHE_REF"]+" failed"); n != 1 {
				t.Errorf("%d log lines say the cache export failed, want 1:\n%s", n, res.Stdout)
			}
			logs, _ := res.Terminal["logs"].(string)
			switch backend {
			case "buildkit":
				// The mode=max export runs once SUCCEEDED is sent, so its
				// failure is in the runner's own log, never in the report.
				if strings.Contains(logs, "cache: exporting") || strings.Contains(logs, "failed (the build goes on)") ||
					!strings.Contains(logs, "after this build is reported") {
					t.Errorf("the report does not leave the cache export for after it:\n%s", logs)
				}
			default:
				// The inline cache goes with the image, before the report.
				if !strings.Contains(logs, "push: cache: export to "+refused.Env["CACHE_REF"]+" failed (the build goes on)") {
					t.Errorf("the report does not say the inline cache export failed:\n%s", logs)
				}
			}
			if res.ExitCode != 0 {
				t.Errorf("exit code %d after a refused cache export, want 0", res.ExitCode)
			}
		})
	}
}

var other = struct {
	once sync.Once
	reg  *registry.Registry
	err  error
}{}

// otherRegistry is a registry whose credentials the builds do not have.
func otherRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	other.once.Do(func() {
		other.reg, other.err = registry.Start(context.Background(), registry.Options{})
	})
	if other.err != nil {
		t.Fatal(other.err)
	}
	return other.reg
}

// serveFromRegistry pulls ref into the suite's engine, runs it with PORT set
// on the host network, and returns what GET / answers.
func serveFromRegistry(t *testing.T, ref string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := dockerClient(t)
	pull, err := c.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: env.registry.RegistryAuth()})
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := pull.Wait(ctx); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Image:      ref,
		Config:     &container.Config{Env: []string{fmt.Sprintf("PORT=%d", port)}},
		HostConfig: &container.HostConfig{NetworkMode: "host"},
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	defer c.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the image never answered on %s: %v", url, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// assertNoSecretInBlobs reads every blob the registry stores (images and
// caches, decompressed) and looks for the suite's secrets. The sample app's
// own deps.txt must be found, or the scan proves nothing.
func assertNoSecretInBlobs(t *testing.T) {
	t.Helper()
	found, blobs := false, 0
	err := env.registry.StoredBlobs(func(p string, b []byte) error {
		blobs++
		found = found || bytes.Contains(b, []byte("tiny-template 2.1.0"))
		for name, v := range secretValues() {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("registry blob %s contains the %s", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("none of %d registry blobs holds the sample app's deps.txt: the secret scan sees nothing", blobs)
	}
}

var mirrored struct {
	once   sync.Once
	mirror string
	err    error
}

// standInsInRegistry pushes the stand-in base images to the test registry
// (a buildkitd resolves FROM there) and returns the mirror prefix.
func standInsInRegistry(t *testing.T) string {
	t.Helper()
	needStandIns(t)
	mirrored.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		imgs, err := baseimage.All()
		if err != nil {
			mirrored.err = err
			return
		}
		// The Node and Go templates' images; Python's is not needed here.
		var need []baseimage.Image
		for _, img := range imgs {
			if !strings.Contains(img.Official, "python") {
				need = append(need, img)
			}
		}
		mirrored.mirror = env.registry.Addr() + "/mirror"
		mirrored.err = baseimage.Push(ctx, env.daemon.Host(), mirrored.mirror, env.registry.RegistryAuth(), need...)
	})
	if mirrored.err != nil {
		t.Fatal(mirrored.err)
	}
	return mirrored.mirror
}

// TestRealAppsAreWarmOnANewBuilder builds the Node (Express) and Go apps by
// their templates cold on one builder, changes one source file, and builds
// again on a brand-new builder against the same registry: on buildkitd the
// dependency install comes from the registry cache (mode=max); on either
// backend the cache mounts the template names are restored; the image
// answers HTTP.
func TestRealAppsAreWarmOnANewBuilder(t *testing.T) {
	for _, tc := range []struct {
		app     realapps.App
		backend string
		// install is the step the registry cache must serve; "" where the
		// backend's cache does not hold it (an engine's inline cache holds
		// the final stage only).
		install string
		// carried are the cache mounts the template carries to a new builder.
		carried []string
	}{
		{realapps.Express, "buildkit", "npm ci", nil},
		{realapps.Go, "buildkit", "go mod download", []string{"/go/pkg/mod", "/root/.cache/go-build"}},
		{realapps.Go, "docker", "", []string{"/go/pkg/mod", "/root/.cache/go-build"}},
	} {
		t.Run(tc.app.Name+"/"+tc.backend, func(t *testing.T) {
			// Each has its own builders, repository and image, so they
			// overlap their downloads and daemon starts.
			t.Parallel()
			mirror := standInsInRegistry(t)
			files, err := tc.app.Files()
			if err != nil {
				t.Fatal(err)
			}
			repo, shas := newRepo(t, files)
			changed, err := repo.Update("main", tc.app.SourceChange(files, 1), "one source file")
			if err != nil {
				t.Fatal(err)
			}
			run := func(sha string) (*build, result) {
				b := newBuild(t, repo, sha)
				for k, v := range tc.app.BuildEnv(mirror) {
					b.Env[k] = v
				}
				b.Env["CACHE_BRANCH"], b.Env["CACHE_DEFAULT_BRANCH"] = "main", "main"
				newBuilder(t, tc.backend, b)
				res := b.run(t)
				mustSucceed(t, res)
				return b, res
			}
			_, cold := run(shas[0])
			b, warm := run(changed)
			logs, _ := warm.Terminal["logs"].(string)
			if tc.install != "" && !stepsCached(logs, tc.install) {
				t.Errorf("%q was not CACHED on the new builder:\n%s", tc.install, logs)
			}
			if warm.Terminal["cacheHit"] != true {
				t.Errorf("SUCCEEDED says cacheHit %v", warm.Terminal["cacheHit"])
			}
			// go build reads the modules from its mount (the go mod
			// download layer holds none) and keeps the standard library
			// compiled in the other one.
			for _, m := range tc.carried {
				if !strings.Contains(logs, "cache mounts: "+m+": restored") {
					t.Errorf("the new builder did not restore %s:\n%s", m, logs)
				}
			}
			if len(tc.carried) == 0 && strings.Contains(logs, "cache mounts") {
				t.Errorf("the %s template carries no cache mounts, but the log speaks of them:\n%s", tc.app.Name, logs)
			}
			t.Logf("cold build phase %v ms, warm on a new builder %v ms",
				cold.Terminal["phaseTimingsMs"].(map[string]any)["build"], warm.Terminal["phaseTimingsMs"].(map[string]any)["build"])
			port, _ := warm.Terminal["detectedPort"].(float64)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c := dockerClient(t)
			pull, err := c.ImagePull(ctx, b.Tag, client.ImagePullOptions{RegistryAuth: env.registry.RegistryAuth()})
			if err != nil {
				t.Fatal(err)
			}
			if err := pull.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := appcheck.Get(ctx, c, b.Tag, int(port), "/")
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != 200 || !strings.Contains(got.Body, tc.app.Answer) {
				t.Errorf("GET / on port %v = %d %q, want 200 with %q", port, got.Status, got.Body, tc.app.Answer)
			}
		})
	}
}
