// Package child runs the long-lived helper processes of testinfra (dockerd,
// docker-registry) so that they cannot outlive the test that started them:
// each one is stopped when its context ends or Stop is called, killed with
// its whole process group when it ignores SIGTERM, and killed by the kernel
// if the test binary itself dies.
package child

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes one child process.
type Config struct {
	// Name is used in messages, e.g. "dockerd".
	Name string
	Path string
	Args []string
	// Env is added to (and overrides) the test's own environment.
	Env []string
	// LogPath receives stdout and stderr; Tail reads it back for errors.
	LogPath string
	// LogWriter, if set, gets a copy of the output as it is written.
	LogWriter io.Writer
	// StopTimeout is how long SIGTERM is given before SIGKILL; default 10s.
	StopTimeout time.Duration
}

// Process is a started child.
type Process struct {
	name        string
	cmd         *exec.Cmd
	logPath     string
	logFile     *os.File
	stopTimeout time.Duration

	done     chan struct{}
	waitErr  error // set before done is closed
	stopOnce sync.Once
	stopErr  error
}

// Start starts the process. It is stopped when ctx ends.
func Start(ctx context.Context, c Config) (*Process, error) {
	lf, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", c.Name, err)
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = mergeEnv(os.Environ(), c.Env)
	if c.LogWriter != nil {
		w := io.MultiWriter(lf, c.LogWriter)
		cmd.Stdout, cmd.Stderr = w, w
		// Grandchildren may inherit the pipe Go creates for a non-file
		// writer; without a bound Wait would hang until they exit.
		cmd.WaitDelay = 2 * time.Second
	} else {
		cmd.Stdout, cmd.Stderr = lf, lf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A group of its own lets Stop kill everything it spawned that did
		// not leave the group, and keeps terminal signals meant for `go
		// test` from reaching it twice.
		Setpgid: true,
		// If the test binary dies (panic, -timeout, SIGKILL), the kernel
		// kills the child instead of leaving a daemon behind.
		Pdeathsig: syscall.SIGKILL,
	}
	// Pdeathsig fires when the forking OS thread exits, not the process.
	// Go only retires threads that a goroutine left locked, so forking from
	// a locked thread that we unlock afterwards keeps it alive.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	p := &Process{
		name:        c.Name,
		cmd:         cmd,
		logPath:     c.LogPath,
		logFile:     lf,
		stopTimeout: c.StopTimeout,
		done:        make(chan struct{}),
	}
	if p.stopTimeout <= 0 {
		p.stopTimeout = 10 * time.Second
	}
	go func() {
		p.waitErr = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Stop()
		case <-p.done:
		}
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is the result of Wait; valid once Done is closed.
func (p *Process) ExitErr() error {
	<-p.done
	return p.waitErr
}

// Stop sends SIGTERM, then SIGKILL to the process group after the stop
// timeout, and waits for the exit. It reports an error only when the process
// had to be killed. Safe to call more than once and concurrently.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(p.stopTimeout)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			p.stopErr = fmt.Errorf("stop %s: no exit %s after SIGTERM; killed", p.name, p.stopTimeout)
		}
	})
	<-p.done
	return p.stopErr
}

// Tail returns the last lines of the log, for error messages.
func (p *Process) Tail() string { return Tail(p.logPath, 40) }

// Tail returns up to n last lines of the file at path (read from its last
// 16 KiB), indented for embedding in an error.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const max = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "(log empty)"
	}
	return "log tail (" + path + "):\n\t" + strings.Join(lines, "\n\t")
}

// Exited describes an early exit of a child for a start error.
func (p *Process) Exited() error {
	err := p.ExitErr()
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited during start: %w\n%s", p.name, err, p.Tail())
}

func mergeEnv(base, extra []string) []string {
	if len(extra) == 0 {
		return base
	}
	drop := map[string]bool{}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}
