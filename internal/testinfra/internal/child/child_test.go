package child

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStopEscalatesToKill(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(context.Background(), Config{
		Name: "stubborn",
		Path: "/bin/sh",
		// The shell ignores TERM, and so does its sleeping child; only the
		// group SIGKILL ends both.
		Args:        []string{"-c", `trap "" TERM; echo started; sleep 100 & wait`},
		LogPath:     filepath.Join(dir, "log"),
		StopTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, filepath.Join(dir, "log"), "started")
	pgid := p.Pid()
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop = %v, want a killed error", err)
	}
	// Killed members may linger as zombies if nothing reaps orphans (pid 1
	// in some sandboxes does not); only live ones count.
	if live := liveInGroup(pgid); len(live) > 0 {
		t.Errorf("process group %d still has live members %v", pgid, live)
	}
	if err := p.Stop(); err == nil {
		t.Error("second Stop lost the error")
	}
	if !strings.Contains(p.Tail(), "started") {
		t.Errorf("Tail = %q", p.Tail())
	}
}

func TestContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, Config{Name: "sleep", Path: "/bin/sleep", Args: []string{"100"}, LogPath: filepath.Join(t.TempDir(), "log")})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not stopped by ctx")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop after a clean SIGTERM exit: %v", err)
	}
}

func TestExited(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(context.Background(), Config{Name: "fails", Path: "/bin/sh", Args: []string{"-c", "echo boom >&2; exit 3"}, LogPath: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := p.Exited().Error(); !strings.Contains(err, "exit status 3") || !strings.Contains(err, "boom") {
		t.Errorf("Exited = %s", err)
	}
}

func TestShortTempDir(t *testing.T) {
	t.Setenv("TMPDIR", "/tmp/"+strings.Repeat("x", 80))
	d, err := ShortTempDir("aft")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(d)
	if !strings.HasPrefix(d, "/tmp/aft") {
		t.Errorf("ShortTempDir = %s", d)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/a\040b\011c`); got != "/a b\tc" {
		t.Errorf("got %q", got)
	}
}

func liveInGroup(pgid int) []string {
	var live []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			live = append(live, e.Name()+":"+f[0])
		}
	}
	return live
}

func waitLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%q never appeared in %s", want, path)
}
