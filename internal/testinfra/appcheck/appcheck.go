// Package appcheck runs a built image as the platform would (its own
// command, its own PORT) and asks it for a page over HTTP.
//
// The container gets network mode "none": a network namespace of its own
// with only a loopback, so the port the build reported is free whatever else
// runs on this machine (other test engines, other apps on 8080). The request
// is made from inside that namespace: the dialling goroutine's OS thread
// joins the container's network namespace (setns) to open the socket, which
// then stays there, and returns to its own. Needs root, like the engine.
package appcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// Result is what the running app answered.
type Result struct {
	Status int
	Body   string
	// Waited is how long the app took to answer its first request.
	Waited time.Duration
}

// Get runs image (already on the engine) with env added to its own, and
// GETs http://127.0.0.1:port/path inside its network namespace until the app
// answers or ctx ends. The container is removed afterwards; its logs are in
// the error when the app never answers or exits.
func Get(ctx context.Context, c *client.Client, image string, port int, path string, env ...string) (Result, error) {
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Image:      image,
		Config:     &container.Config{Env: env},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return Result{}, fmt.Errorf("create container from %s: %w", image, err)
	}
	defer c.ContainerRemove(context.WithoutCancel(ctx), cr.ID, client.ContainerRemoveOptions{Force: true})
	if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		return Result{}, fmt.Errorf("start container from %s: %w", image, err)
	}
	start := time.Now()
	in, err := c.ContainerInspect(ctx, cr.ID, client.ContainerInspectOptions{})
	if err != nil {
		return Result{}, err
	}
	pid := in.Container.State.Pid
	if pid == 0 {
		return Result{}, fmt.Errorf("%s exited at once%s", image, logs(ctx, c, cr.ID))
	}
	hc := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialIn(ctx, pid, network, addr)
			},
		},
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + path
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if rerr == nil {
				return Result{Status: resp.StatusCode, Body: string(b), Waited: time.Since(start)}, nil
			}
			err = rerr
		}
		last = err
		in, ierr := c.ContainerInspect(ctx, cr.ID, client.ContainerInspectOptions{})
		if ierr == nil && !in.Container.State.Running {
			return Result{}, fmt.Errorf("%s exited with %d before answering on port %d%s", image, in.Container.State.ExitCode, port, logs(ctx, c, cr.ID))
		}
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%s never answered GET %s (last error: %v)%s", image, url, last, logs(context.WithoutCancel(ctx), c, cr.ID))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// dialIn opens a connection from inside the network namespace of pid.
//
// The dialling OS thread joins that namespace and then returns to its own
// before it is unlocked. Leaving it locked would make Go retire the thread
// when the goroutine ends, and the kernel delivers Pdeathsig when the thread
// that forked a child exits, not the process: a test daemon (dockerd, the
// registry) forked from that thread would be killed.
func dialIn(ctx context.Context, pid int, network, addr string) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer own.Close()
		target, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, fmt.Errorf("join the container's network namespace: %w", err)}
			return
		}
		// The socket is made here, in the container's namespace, and
		// stays there after the thread leaves.
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if rerr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); rerr != nil {
			// Never hand this thread back to the scheduler: it stays
			// locked and Go retires it with the goroutine.
			if c != nil {
				c.Close()
			}
			ch <- res{nil, fmt.Errorf("return to the test's network namespace: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func logs(ctx context.Context, c *client.Client, id string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := c.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "40"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	// The stream is multiplexed (no TTY): drop the 8-byte frame headers.
	var out strings.Builder
	for len(b) >= 8 {
		n := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		b = b[8:]
		if n > len(b) {
			n = len(b)
		}
		out.Write(b[:n])
		b = b[n:]
	}
	return "; container log:\n" + out.String()
}
