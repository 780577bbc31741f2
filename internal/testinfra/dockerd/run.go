package dockerd

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Run runs a container of image to its end, with no network (the test
// daemons have no bridge), and returns its output with carriage returns
// and surrounding space removed. cmd empty runs the image's own command.
// A non-zero exit is an error that carries the output.
func Run(ctx context.Context, c *client.Client, image string, cmd ...string) (string, error) {
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Image: image,
		// Tty keeps the output a plain stream rather than multiplexed frames.
		Config:     &container.Config{Cmd: cmd, Tty: true},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return "", fmt.Errorf("create a container of %s: %w", image, err)
	}
	defer func() {
		_, _ = c.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	}()
	wait := c.ContainerWait(ctx, cr.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("start a container of %s: %w", image, err)
	}
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
	case err := <-wait.Error:
		return "", fmt.Errorf("wait for a container of %s: %w", image, err)
	}
	logs, err := c.ContainerLogs(ctx, cr.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", fmt.Errorf("read the output of a container of %s: %w", image, err)
	}
	defer logs.Close()
	b, err := io.ReadAll(logs)
	out := strings.TrimSpace(strings.ReplaceAll(string(b), "\r", ""))
	if err != nil {
		return out, fmt.Errorf("read the output of a container of %s: %w", image, err)
	}
	if code != 0 {
		return out, fmt.Errorf("a container of %s exited %d: %s", image, code, out)
	}
	return out, nil
}
