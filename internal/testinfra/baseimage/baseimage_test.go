package baseimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
)

// TestStandIns builds (or takes from the cache) every stand-in, imports it
// into a real engine, and runs what the templates rely on inside each: the
// language's tools at the versions the names promise, the host's CA bundle,
// the official images' users, and Python's web frameworks from Debian.
// Then it pushes one to a registry under a mirror prefix, as a builder
// without the engine's image store needs.
func TestStandIns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Debian root filesystems and starts dockerd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	imgs, err := All()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Log: testWriter{t}}
	t0 := time.Now()
	if err := Prepare(ctx, opts, imgs...); err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		t1 := time.Now()
		p, err := Rootfs(ctx, img, opts)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(p)
		t.Logf("%s: rootfs %s (%d MB) ready in %s", img.Name(), p, st.Size()>>20, time.Since(t1).Round(time.Second))
	}
	t.Logf("all root filesystems ready in %s", time.Since(t0).Round(time.Second))

	// An engine data root of this test's own, kept between runs: a warm
	// run then only inspects, and never deletes a gigabyte of layers.
	cache, err := dockerd.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	d, err := dockerd.Start(ctx, dockerd.Options{DataRoot: cache + "-baseimage"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	t2 := time.Now()
	if err := Import(ctx, d.Host(), opts, imgs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %d stand-ins in %s (nothing to do when the engine's data root already had them)", len(imgs), time.Since(t2).Round(time.Millisecond))
	t3 := time.Now()
	if err := Import(ctx, d.Host(), opts, imgs...); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t3); el > 5*time.Second {
		t.Errorf("second Import took %s: it should only inspect", el)
	}

	c, err := d.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ca, err := os.ReadFile(HostCABundle)
	if err != nil {
		t.Fatal(err)
	}
	caSum := sha256Hex(ca)
	checks := map[string]struct{ script, want string }{
		"debian": {`. /etc/os-release; echo $VERSION_CODENAME`, "bookworm"},
		"node": {`node -e 'process.stdout.write(process.versions.node.split(".")[0])'; echo; npm --version | cut -d. -f1; id -u node; echo $NODE_EXTRA_CA_CERTS`,
			"18\n9\n1000\n/etc/ssl/certs/ca-certificates.crt"},
		"python": {`python --version | cut -d. -f1,2; python -m venv --system-site-packages /tmp/v && /tmp/v/bin/python -c 'import flask, gunicorn, fastapi, uvicorn; print("frameworks ok")' && /tmp/v/bin/pip install -q --no-index flask gunicorn && echo satisfied`,
			"Python 3.11\nframeworks ok\nsatisfied"},
		"golang": {`go version | cut -d' ' -f3 | cut -d. -f1,2; echo $GOPATH; test -w /go && echo writable`, "go" + goMinor(t, imgs[3]) + "\n/go\nwritable"},
	}
	for _, img := range imgs {
		name := strings.TrimPrefix(img.Official[:strings.LastIndexByte(img.Official, ':')], "docker.io/library/")
		chk, ok := checks[name]
		if !ok {
			t.Fatalf("no check for %s", name)
		}
		out := runIn(ctx, t, c, img.Name(), chk.script+"; sha256sum /etc/ssl/certs/ca-certificates.crt | cut -d' ' -f1")
		want := chk.want + "\n" + caSum
		if out != want {
			t.Errorf("%s printed\n%s\nwant\n%s", img.Name(), out, want)
		}
		got, err := c.ImageInspect(ctx, img.Name())
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Config.Labels) != 0 {
			t.Errorf("%s has labels %v; images built FROM it would inherit them", img.Name(), got.Config.Labels)
		}
		if !strings.Contains(got.Comment, "stand-in of "+img.Official) {
			t.Errorf("%s comment %q does not say what it stands in for", img.Name(), got.Comment)
		}
	}

	reg, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()
	mirror := reg.Addr() + "/mirror"
	if err := Push(ctx, d.Host(), mirror, reg.RegistryAuth(), Debian()); err != nil {
		t.Fatal(err)
	}
	tags, err := reg.Tags(ctx, "mirror/library/debian")
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 1 || tags[0] != "bookworm-slim" {
		t.Errorf("registry tags of mirror/library/debian = %v, want [bookworm-slim]", tags)
	}
}

// TestConcurrentCallersBuildOnce: test binaries run in parallel share the
// cache; the second caller waits for the first one's build and uses it.
func TestConcurrentCallersBuildOnce(t *testing.T) {
	o := Options{CacheDir: t.TempDir(), Sources: Sources{Mirror: "http://example.invalid/debian"}, CABundle: HostCABundle}
	var builds atomic.Int32
	var wg sync.WaitGroup
	paths := make([]string, 4)
	errs := make([]error, 4)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = cached(context.Background(), o, "k1", func(work string) error {
				builds.Add(1)
				time.Sleep(300 * time.Millisecond)
				return os.WriteFile(filepath.Join(work, "rootfs.tar"), []byte("tar"), 0o644)
			})
		}()
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if paths[i] != paths[0] {
			t.Errorf("caller %d got %s, caller 0 got %s", i, paths[i], paths[0])
		}
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want once", n)
	}
	if left, _ := filepath.Glob(filepath.Join(o.CacheDir, "k1", "work-*")); len(left) != 0 {
		t.Errorf("work dirs left behind: %v", left)
	}
}

// TestFailedBuildLeavesNoEntry: a build that fails is not cached, and the
// next caller builds again.
func TestFailedBuildLeavesNoEntry(t *testing.T) {
	o := Options{CacheDir: t.TempDir()}
	_, err := cached(context.Background(), o, "k", func(work string) error {
		return run(context.Background(), work, "sh", "-c", "echo apt exploded; exit 3")
	})
	if err == nil || !strings.Contains(err.Error(), "apt exploded") {
		t.Fatalf("err = %v, want one with the command's output", err)
	}
	if _, err := os.Stat(filepath.Join(o.CacheDir, "k", "rootfs.tar")); !os.IsNotExist(err) {
		t.Errorf("a failed build left a cache entry (stat: %v)", err)
	}
}

func TestRecipeHashFollowsTheRecipe(t *testing.T) {
	o := Options{CacheDir: t.TempDir(), Sources: Sources{Mirror: "http://deb.example/debian"}}
	h := func(img Image, o Options) string {
		k, err := RecipeHash(img, o)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := h(Node(), o)
	if h(Node(), o) != base {
		t.Fatal("same recipe, different hash")
	}
	more := Node()
	more.Packages = append(more.Packages, "git")
	o2 := o
	o2.Sources.Mirror = "http://other.example/debian"
	for what, k := range map[string]string{"packages": h(more, o), "mirror": h(Node(), o2), "image": h(Python(), o)} {
		if k == base {
			t.Errorf("changing the %s kept the hash", what)
		}
	}
}

func TestReadSources(t *testing.T) {
	etc := t.TempDir()
	os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(etc, "sources.list.d", "debian.sources"), []byte(`Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`), 0o644)
	os.WriteFile(filepath.Join(etc, "sources.list.d", "other.list"), []byte("deb [signed-by=/k.gpg] https://deb.nodesource.com/node_20.x nodistro main\n"), 0o644)
	got := readSources(etc)
	want := Sources{Mirror: "http://deb.debian.org/debian", Security: "http://deb.debian.org/debian-security"}
	if got != want {
		t.Errorf("readSources = %+v, want %+v", got, want)
	}

	etc2 := t.TempDir()
	os.WriteFile(filepath.Join(etc2, "sources.list"), []byte("# comment\ndeb http://mirror.example/debian/ trixie main\ndeb-src http://src.example/debian trixie main\n"), 0o644)
	if got := readSources(etc2); got.Mirror != "http://mirror.example/debian" || got.Security != "" {
		t.Errorf("one-line sources: %+v", got)
	}
}

func goMinor(t *testing.T, img Image) string {
	t.Helper()
	tag := img.Tag()
	return tag[:strings.IndexByte(tag, '-')]
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// runIn runs script in a container from image and returns its output.
func runIn(ctx context.Context, t *testing.T, c *client.Client, image, script string) string {
	t.Helper()
	out, err := dockerd.Run(ctx, c, image, "sh", "-c", script)
	if err != nil {
		t.Error(err)
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
