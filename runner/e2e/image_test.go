package e2e

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// runFromRegistry removes ref from the engine, pulls it back from the test
// registry (so what runs is what was pushed) and returns what its default
// command prints.
func runFromRegistry(t *testing.T, ref string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := dockerClient(t)
	if _, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove local %s: %v", ref, err)
	}
	pull, err := c.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: env.registry.RegistryAuth()})
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := pull.Wait(ctx); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Image: ref,
		// Tty keeps stdout a plain stream rather than multiplexed frames.
		Config:     &container.Config{Tty: true},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	defer c.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	wait := c.ContainerWait(ctx, cr.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	select {
	case res := <-wait.Result:
		if res.StatusCode != 0 {
			t.Errorf("container exited %d", res.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatalf("wait: %v", err)
	}
	logs, err := c.ContainerLogs(ctx, cr.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	b, _ := io.ReadAll(logs)
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\r", ""))
}

// repoAndTag splits a tag on the test registry into repository and tag.
func repoAndTag(ref string) (string, string) {
	rest := strings.TrimPrefix(ref, env.registry.Addr()+"/")
	i := strings.LastIndexByte(rest, ':')
	return rest[:i], rest[i+1:]
}
