package dockerd

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
)

// TestDaemonAndBusybox starts one engine, imports the busybox base image
// (twice, to check that the second is a no-op), and runs one tiny container
// from it to prove the rootfs works.
func TestDaemonAndBusybox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t0 := time.Now()
	d, err := FromEnv(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
		if !d.External() {
			if _, err := os.Stat(d.DataRoot()); !os.IsNotExist(err) {
				t.Errorf("data root %s left behind (stat: %v)", d.DataRoot(), err)
			}
		}
	})
	t.Logf("dockerd ready in %s at %s (external=%v)", time.Since(t0).Round(time.Millisecond), d.Host(), d.External())
	if !strings.HasPrefix(d.Host(), "unix://") && !d.External() {
		t.Fatalf("Host() = %q, want unix://", d.Host())
	}

	const ref = "af-testinfra/busybox:test"
	t1 := time.Now()
	if err := ImportBusybox(ctx, d.Host(), ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("ImportBusybox took %s", time.Since(t1).Round(time.Millisecond))
	t2 := time.Now()
	if err := ImportBusybox(ctx, d.Host(), ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("ImportBusybox again (exists) took %s", time.Since(t2).Round(time.Millisecond))

	c, err := d.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	img, err := c.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Config.Cmd; len(got) != 1 || got[0] != "/bin/sh" {
		t.Errorf("Cmd = %q", got)
	}

	t3 := time.Now()
	out := run(ctx, t, c, ref, `id -un; id -u nobody; test -d /tmp && echo tmp; `+
		`for a in echo cat sleep mkdir ls wc env true printf [ httpd nc wget chmod cp rm tr sed grep; do `+
		`command -v $a >/dev/null || echo missing $a; done; echo hello | sed s/hello/bye/`)
	t.Logf("container run took %s", time.Since(t3).Round(time.Millisecond))
	want := "root\n65534\ntmp\nbye"
	if out != want {
		t.Errorf("container output %q, want %q", out, want)
	}

	// The engine can push to the test registry with its htpasswd login.
	reg, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()
	target := reg.Ref("af/busybox", "pushed")
	if _, err := c.ImageTag(ctx, client.ImageTagOptions{Source: ref, Target: target}); err != nil {
		t.Fatal(err)
	}
	t4 := time.Now()
	push, err := c.ImagePush(ctx, target, client.ImagePushOptions{RegistryAuth: reg.RegistryAuth()})
	if err != nil {
		t.Fatal(err)
	}
	if err := push.Wait(ctx); err != nil {
		t.Fatalf("push: %v", err)
	}
	t.Logf("push took %s", time.Since(t4).Round(time.Millisecond))
	ic, err := reg.ImageConfig(ctx, "af/busybox", "pushed")
	if err != nil {
		t.Fatal(err)
	}
	if len(ic.Cmd) != 1 || ic.Cmd[0] != "/bin/sh" || ic.ConfigDigest != img.ID {
		t.Errorf("pushed config: Cmd %q, digest %s (image id %s)", ic.Cmd, ic.ConfigDigest, img.ID)
	}
}

func run(ctx context.Context, t *testing.T, c *client.Client, image, script string) string {
	t.Helper()
	out, err := Run(ctx, c, image, "sh", "-c", script)
	if err != nil {
		t.Error(err)
	}
	return out
}

// TestStartFailureCleansUp checks that a daemon that cannot start reports
// its log tail and leaves no temp dir behind.
func TestStartFailureCleansUp(t *testing.T) {
	if os.Getenv(EnvHost) != "" {
		t.Skip("using an external engine")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err := Start(context.Background(), Options{ExtraArgs: []string{"--no-such-flag"}})
	if err == nil {
		t.Fatal("Start with a bad flag succeeded")
	}
	if !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("error lacks the log tail: %v", err)
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Errorf("left behind in %s: %v", tmp, es)
	}
}

// TestDataRootLock checks that a persistent data root is used by one
// daemon at a time and that a second one falls back to its temp dir.
func TestDataRootLock(t *testing.T) {
	want := t.TempDir()
	var log strings.Builder
	got1, lock1, err := lockDataRoot(want, "/tmp1", &log)
	if err != nil || got1 != want || lock1 == nil {
		t.Fatalf("first: %s %v %v", got1, lock1, err)
	}
	got2, lock2, err := lockDataRoot(want, "/tmp2", &log)
	if err != nil || got2 != "/tmp2/data" || lock2 != nil || !strings.Contains(log.String(), "in use") {
		t.Fatalf("second: %s %v %v (%q)", got2, lock2, err, log.String())
	}
	lock1.Close()
	got3, lock3, err := lockDataRoot(want, "/tmp3", &log)
	if err != nil || got3 != want || lock3 == nil {
		t.Fatalf("after release: %s %v %v", got3, lock3, err)
	}
	lock3.Close()
}
