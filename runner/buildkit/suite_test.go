package buildkit_test

import (
	"context"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra/buildkitd"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
	"github.com/alternatefutures/af-builder/runner/builder"
	"github.com/alternatefutures/af-builder/runner/builder/buildertest"
	"github.com/alternatefutures/af-builder/runner/buildkit"
)

// TestBuilderSuite runs the backends' shared suite against real buildkitd
// daemons (each builder a fresh one with an empty state dir) and a real
// registry.
func TestBuilderSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs buildkitd (tools/buildkitd/build.sh), runc and docker-registry")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := buildertest.Harness{ExportsIntermediateStages: true}
	var err error
	if h.Registry, err = registry.Start(ctx, registry.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Registry.Stop() })
	if h.Other, err = registry.Start(ctx, registry.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Other.Stop() })

	// BuildKit pulls FROM images from a registry: the base goes there first.
	seed, err := buildkitd.Start(ctx, buildkitd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.BaseImage = h.Registry.Ref("base/busybox", "1")
	err = buildkitd.PushBusybox(ctx, seed, h.BaseImage, h.Registry.User(), h.Registry.Password())
	if serr := seed.Stop(); serr != nil {
		t.Error(serr)
	}
	if err != nil {
		t.Fatal(err)
	}

	h.NewBuilder = func(t *testing.T) builder.Builder {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d, err := buildkitd.Start(context.Background(), buildkitd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Stop(); err != nil {
				t.Error(err)
			}
		})
		b, err := buildkit.Connect(ctx, d.Address())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if _, err := b.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		return b
	}
	buildertest.Run(t, h)
}
