package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
)

// runFromRegistry removes ref from the engine, pulls it back from the test
// registry (so what runs is what was pushed) and returns what its default
// command prints.
func runFromRegistry(t *testing.T, ref string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := dockerClient(t)
	pullFresh(ctx, t, c, ref)
	out, err := dockerd.Run(ctx, c, ref)
	if err != nil {
		t.Error(err)
	}
	return out
}

// repoAndTag splits a tag on the test registry into repository and tag.
func repoAndTag(ref string) (string, string) {
	rest := strings.TrimPrefix(ref, env.registry.Addr()+"/")
	i := strings.LastIndexByte(rest, ':')
	return rest[:i], rest[i+1:]
}
