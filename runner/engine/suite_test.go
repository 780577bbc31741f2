package engine_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
	"github.com/alternatefutures/af-builder/runner/builder"
	"github.com/alternatefutures/af-builder/runner/builder/buildertest"
	"github.com/alternatefutures/af-builder/runner/engine"
)

// TestBuilderSuite runs the backends' shared suite against real Docker
// engines (each builder a fresh dockerd with an empty data root) and a real
// registry.
func TestBuilderSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs dockerd and docker-registry")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := buildertest.Harness{}
	h.Registry, h.BaseImage = registryWithBase(ctx, t)
	var err error
	if h.Other, err = registry.Start(ctx, registry.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Other.Stop() })
	h.NewBuilder = func(t *testing.T) builder.Builder {
		e, _ := newEngine(t)
		return e
	}
	buildertest.Run(t, h)
}

// registryWithBase starts a registry holding the busybox base every
// builder pulls from it, as in a cluster, and returns its reference.
func registryWithBase(ctx context.Context, t *testing.T) (*registry.Registry, string) {
	t.Helper()
	reg, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Stop() })
	base := reg.Ref("base/busybox", "1")
	seed, err := dockerd.Start(ctx, dockerd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	requireEngineVersion(ctx, t, seed.Host())
	err = pushBusybox(ctx, seed.Host(), base, reg)
	if serr := seed.Stop(); serr != nil {
		t.Error(serr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return reg, base
}

// newEngine starts a fresh dockerd (an empty data root) for t and returns
// an Engine on it that answers.
func newEngine(t *testing.T) (*engine.Engine, *dockerd.Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := dockerd.Start(context.Background(), dockerd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
	})
	e, err := engine.Connect(d.Host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if _, err := e.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return e, d
}

func pushBusybox(ctx context.Context, host, ref string, reg *registry.Registry) error {
	if err := dockerd.ImportBusybox(ctx, host, ref); err != nil {
		return err
	}
	c, err := client.New(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: reg.RegistryAuth()})
	if err != nil {
		return err
	}
	defer res.Close()
	for m, err := range res.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if m.Error != nil {
			return m.Error
		}
	}
	return nil
}

// requireEngineVersion fails the test unless the engine at host is the one
// AF_TEST_DOCKERD_VERSION names, when set: `make test-engine-28` puts a
// newer dockerd first on PATH, and the suite, which adapts to what the
// daemon takes, would otherwise pass just as well on Debian's 20.10.
func requireEngineVersion(ctx context.Context, t *testing.T, host string) {
	t.Helper()
	want := os.Getenv("AF_TEST_DOCKERD_VERSION")
	if want == "" {
		return
	}
	c, err := client.New(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != want {
		t.Fatalf("the tests' dockerd is %s (API %s), AF_TEST_DOCKERD_VERSION wants %s", v.Version, v.APIVersion, want)
	}
	t.Logf("engine %s, API %s", v.Version, v.APIVersion)
}
