// Package engine drives a Docker Engine (the dind sidecar in production, a
// local dockerd in tests and the demo) through its API: wait for it, build
// with BuildKit, push.
package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/alternatefutures/af-builder/runner/builder"
	"github.com/alternatefutures/af-builder/runner/failure"
)

// Engine is a connection to one Docker Engine.
type Engine struct {
	cli *client.Client
}

// Connect prepares a client for host (a DOCKER_HOST value; empty means the
// client's default). Nothing is dialled until the first call.
func Connect(host string) (*Engine, error) {
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, failure.Wrap(failure.Infrastructure, "DOCKER_HOST is not usable", err)
	}
	return &Engine{cli: cli}, nil
}

// copyLink: Docker Engine 23 (API 1.42) is the first whose BuildKit parses
// COPY --link; Debian's 20.10 (API 1.41) refuses the whole Dockerfile.
func copyLink(apiVersion string) bool {
	return versions.GreaterThanOrEqualTo(apiVersion, "1.42")
}

// Close releases the client's connections.
func (e *Engine) Close() error { return e.cli.Close() }

// WaitReady pings until the engine answers or ctx ends, and says so with
// its API version. The dind sidecar takes a few seconds to start, and its
// readiness probe is not visible to us.
func (e *Engine) WaitReady(ctx context.Context) (builder.Daemon, error) {
	delay := 100 * time.Millisecond
	var last error
	for {
		res, err := e.cli.Ping(ctx, client.PingOptions{})
		if err == nil {
			return builder.Daemon{
				Line:     fmt.Sprintf("Docker engine ready (API %s)", res.APIVersion),
				CopyLink: copyLink(res.APIVersion),
			}, nil
		}
		last = err
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return builder.Daemon{}, failure.Wrap(failure.Infrastructure,
				fmt.Sprintf("the Docker engine at %s did not answer in time", e.cli.DaemonHost()), last)
		case <-t.C:
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}
