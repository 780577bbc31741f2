package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// startDispatch runs the real dispatch binary in serve mode with the local
// executor, so the runner is started exactly as a self-hosted install would.
func (d *demo) startDispatch(ctx context.Context) error {
	step("dispatch serve (local executor, static subscriptions)")
	subs := filepath.Join(d.tmp, "subscriptions.yaml")
	err := os.WriteFile(subs, []byte(fmt.Sprintf(`services:
  - id: %s
    repository: %s/%s
    branch: main
    installationId: %d
    image: %s/demo/%s
`, serviceID, owner, repo, installationID, d.reg.Addr(), repo)), 0o600)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	d.dispatch = "http://" + addr
	d.webhook = []byte(secret())

	runner, _ := filepath.Abs(filepath.Join(d.bin, "runner"))
	cmd := exec.Command(filepath.Join(d.bin, "dispatch"), "serve", "--addr", addr)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"EXECUTOR=local",
		"LOCAL_RUNNER_BIN=" + runner,
		"LOCAL_DOCKER_HOST=" + d.engine,
		"LOCAL_BUILD_NETWORK=host",
		"LOCAL_LOG_DIR=" + filepath.Join(d.tmp, "builds"),
		"GITHUB_WEBHOOK_SECRET=" + string(d.webhook),
		fmt.Sprintf("GITHUB_APP_ID=%d", appID),
		"GITHUB_APP_PRIVATE_KEY_FILE=" + filepath.Join(d.tmp, "app.pem"),
		"GITHUB_API_URL=" + d.ghURL,
		"GITHUB_URL=" + d.git.URL(),
		"CALLBACK_URL=" + d.sink.URL(),
		"CALLBACK_SECRET=" + d.callbackSecret,
		"API_AUTH_SECRET=" + secret() + secret(),
		"REGISTRY_USER=" + d.reg.User(),
		"REGISTRY_TOKEN=" + d.reg.Password(),
		"SUBSCRIPTIONS_FILE=" + subs,
		"LOG_FORMAT=text",
		"LOG_STREAM_INTERVAL=1s",
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dispatch: %w", err)
	}
	relayDone := make(chan struct{})
	go relay(out, relayDone)
	exited := make(chan struct{})
	go func() {
		<-relayDone // Wait closes the pipe: read it all first
		cmd.Wait()
		close(exited)
	}()
	d.defer_(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.dispatch + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dispatch did not answer /healthz at %s", d.dispatch)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("dispatch exited: %s (see its output above)", cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Printf("dispatch        %s\n", d.dispatch)
	return nil
}

// relay shows dispatch's output: its own log lines, and the runners' build
// logs (phase-prefixed lines) and structured error logs (JSON), each marked.
func relay(r io.Reader, done chan<- struct{}) {
	defer close(done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "time="):
			fmt.Printf("   dispatch | %s\n", line)
		case strings.HasPrefix(line, "{"):
			fmt.Printf("   runner ! | %s\n", line)
		default:
			fmt.Printf("   runner   | %s\n", line)
		}
	}
}
