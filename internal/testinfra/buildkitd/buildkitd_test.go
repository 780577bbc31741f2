package buildkitd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"

	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
)

// TestDaemonBuildsAndStopLeavesNothing starts a daemon, pushes the busybox
// base image through it to a real registry (which also runs a container: the
// image's layer is made by BuildKit's snapshotter, pushed with credentials),
// then stops it and checks that no process, mount or file of it is left.
func TestDaemonBuildsAndStopLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs buildkitd (tools/buildkitd/build.sh), runc and docker-registry")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	reg, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Stop() })

	t0 := time.Now()
	d, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("buildkitd ready in %s at %s", time.Since(t0).Round(time.Millisecond), d.Address())
	if !strings.HasPrefix(d.Address(), "unix://") || !strings.HasSuffix(d.Address(), "/bk.sock") {
		t.Errorf("Address() = %q, want unix://DIR/bk.sock", d.Address())
	}
	pid := d.proc.Pid()

	c, err := d.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := c.ListWorkers(ctx)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].Labels["org.mobyproject.buildkit.worker.executor"] != "oci" {
		t.Errorf("workers = %+v, want the one OCI worker", ws)
	}

	if err := PushBusybox(ctx, d, reg.Ref("base/busybox", "test"), reg.User(), reg.Password()); err != nil {
		t.Fatal(err)
	}
	cfg, err := reg.ImageConfig(ctx, "base/busybox", "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Cmd, " "); got != "/bin/sh" {
		t.Errorf("pushed image's CMD = %q, want /bin/sh", got)
	}

	// A wrong password must not push: the credentials really were used.
	if err := PushBusybox(ctx, d, reg.Ref("base/other", "test"), reg.User(), "wrong"); err == nil {
		t.Error("push with a wrong password succeeded")
	}

	dir, root := d.dir, d.Root()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("buildkitd (pid %d) still running after Stop", pid)
	}
	for _, p := range []string{dir, root} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (stat: %v)", p, err)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), filepath.Clean(dir)) {
		t.Errorf("mounts under %s left behind", dir)
	}
	if _, err := bkclient.New(ctx, d.Address()); err == nil {
		// New does not dial; a call must fail.
		c, _ := bkclient.New(ctx, d.Address())
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		defer lcancel()
		if _, err := c.ListWorkers(lctx); err == nil {
			t.Error("the socket still answers after Stop")
		}
		c.Close()
	}
}
