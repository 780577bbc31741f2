package kubernetes

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/tonistiigi/fsutil"

	"github.com/alternatefutures/af-builder/internal/testinfra/buildkitd"
	"github.com/alternatefutures/af-builder/internal/testinfra/syncbuf"
)

// rootlessUser is the unprivileged account scripts/deps.sh creates with
// subordinate ID ranges, standing in for the image's uid 1000 "user".
const rootlessUser = "afrootless"

// The buildkitd sidecar as Render lays it out, run here rootless the way
// the moby/buildkit rootless image runs it (`rootlesskit buildkitd ARGS`,
// as an unprivileged user with subordinate IDs, USER set so buildkitd takes
// its rootless defaults): a RUN step executes, as root inside the user
// namespace only, and the socket admits the runner through the group the
// pod gives it and refuses anyone else.
func TestRenderedBuildKitSidecarRunsRootless(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping a test that runs buildkitd")
	}
	bin := buildkitdBinary(t)
	for _, tool := range []string{"rootlesskit", "newuidmap", "newgidmap", "runc", "runuser", "setpriv", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run scripts/deps.sh (Debian packages rootlesskit, uidmap, runc, util-linux, busybox-static)", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root, to start buildkitd as the unprivileged " + rootlessUser + " and to dial it as other users")
	}
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		t.Fatalf("user %s: %v (scripts/deps.sh creates it, with subordinate IDs)", rootlessUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	job, _, err := Render(buildkitConfig(t), sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	sidecar := job.Spec.Template.Spec.InitContainers[0]

	// Outside /tmp's sticky, world-writable parent: a dir of its own,
	// traversable by everyone, as the pod's emptyDirs are.
	dir, err := os.MkdirTemp("", "af-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	home, state, run, socketDir := filepath.Join(dir, "home"), filepath.Join(dir, "home/.local/share/buildkit"), filepath.Join(dir, "run"), filepath.Join(dir, "socket")
	for _, d := range []string{dir, home, state, run, socketDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The binary must be readable by the user; the cache may not be.
	daemon := filepath.Join(dir, "buildkitd")
	if out, err := exec.Command("cp", bin, daemon).CombinedOutput(); err != nil {
		t.Fatalf("copy buildkitd: %v %s", err, out)
	}
	sock := filepath.Join(socketDir, "buildkitd.sock")
	var args []string
	for _, a := range sidecar.Args {
		// The socket moves from /run/buildkit (the pod's emptyDir) into
		// the test's directory; every other flag is as rendered.
		args = append(args, strings.Replace(a, "unix://"+buildkitSocketDir+"/", "unix://"+socketDir+"/", 1))
	}
	if !strings.Contains(strings.Join(args, " "), sock) {
		t.Fatalf("rendered args %v do not name the socket", sidecar.Args)
	}

	var logs syncbuf.Buffer
	cmd := exec.Command("runuser", append([]string{"-u", rootlessUser, "--", "env", "-i",
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "USER=user", "XDG_RUNTIME_DIR=" + run, "TMPDIR=" + run,
		"rootlesskit", daemon}, args...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("rootless buildkitd output:\n%s", logs.String())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := waitBuildKit(ctx, t, "unix://"+sock, &logs)
	defer c.Close()

	// The worker reports itself rootless-capable and sandbox-free, as
	// configured.
	workers, err := c.ListWorkers(ctx)
	if err != nil || len(workers) == 0 {
		t.Fatalf("ListWorkers: %v %v", workers, err)
	}
	if mode := workers[0].Labels["org.mobyproject.buildkit.worker.oci.process-mode"]; mode != "no-sandbox" {
		t.Errorf("process mode %q, want no-sandbox (--oci-worker-no-process-sandbox)", mode)
	}

	// The daemon's processes are the user's, not root's, on this side of
	// the user namespace.
	if owners := processOwners(t, cmd.Process.Pid); len(owners) == 0 || owners[0] {
		t.Errorf("a buildkitd process runs as root outside its user namespace (%v)", owners)
	}

	// A RUN step on a busybox rootfs sent as local context.
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "out", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, _ := exec.LookPath("busybox")
	if out, err := exec.Command("cp", bb, filepath.Join(rootfs, "bin/busybox")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	st := llb.Local("rootfs").Run(
		llb.Args([]string{"/bin/busybox", "sh", "-c", "/bin/busybox id -u > /out/uid && echo built rootless > /out/hello"}),
	).AddMount("/out", llb.Scratch())
	def, err := st.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsutil.NewFS(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "result")
	if _, err := c.Solve(ctx, def, bkclient.SolveOpt{
		LocalMounts: map[string]fsutil.FS{"rootfs": fs},
		Exports:     []bkclient.ExportEntry{{Type: bkclient.ExporterLocal, OutputDir: outDir}},
	}, nil); err != nil {
		t.Fatalf("solve through rootless buildkitd: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(outDir, "hello")); err != nil || string(b) != "built rootless\n" {
		t.Errorf("hello = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(outDir, "uid")); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Errorf("RUN step uid = %q, %v; want 0 (root inside the user namespace)", b, err)
	}

	// The socket: 0660, the daemon user's group. The runner (another uid)
	// gets in through that group, as the pod's supplementalGroups gives
	// it; without the group it is refused.
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || int(fi.Sys().(*syscall.Stat_t).Gid) != gid {
		t.Errorf("socket mode %v group %d, want 0660 group %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, gid)
	}
	const runnerUID = "10001"
	// The dialler is this test binary, copied where any uid may run it.
	dialer := filepath.Join(dir, "dialer")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", self, dialer).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := dialAs(dialer, runnerUID, strconv.Itoa(gid), sock); err != nil {
		t.Errorf("uid %s in group %d cannot dial the socket: %v %s", runnerUID, gid, err, out)
	}
	if out, err := dialAs(dialer, runnerUID, "", sock); err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("uid %s without the group: %v %s; want permission denied", runnerUID, err, out)
	}
}

func buildkitdBinary(t *testing.T) string {
	t.Helper()
	p, err := buildkitd.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitBuildKit(ctx context.Context, t *testing.T, addr string, logs *syncbuf.Buffer) *bkclient.Client {
	t.Helper()
	for {
		c, err := bkclient.New(ctx, addr)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = c.ListWorkers(pctx)
			cancel()
			if err == nil {
				return c
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("rootless buildkitd did not answer: %v\n%s", err, logs.String())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// processOwners says, for pid and its descendants, whether each runs as
// root (uid 0 as the host sees it).
func processOwners(t *testing.T, pid int) []bool {
	t.Helper()
	var out []bool
	var walk func(int)
	walk = func(p int) {
		fi, err := os.Stat(fmt.Sprintf("/proc/%d", p))
		if err != nil {
			return
		}
		out = append(out, fi.Sys().(*syscall.Stat_t).Uid == 0)
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p))
		for _, f := range strings.Fields(string(children)) {
			if c, err := strconv.Atoi(f); err == nil {
				walk(c)
			}
		}
	}
	// pid is runuser (root); what matters is below it.
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(children)) {
		if c, err := strconv.Atoi(f); err == nil {
			walk(c)
		}
	}
	return out
}

// dialAs connects to the unix socket as uid, with supplementary group
// group when it is not empty, from a child process that holds no other
// privilege.
func dialAs(dialer, uid, group, sock string) ([]byte, error) {
	args := []string{"--reuid", uid, "--regid", uid}
	if group != "" {
		args = append(args, "--groups", group)
	} else {
		args = append(args, "--clear-groups")
	}
	cmd := exec.Command("setpriv", append(args, "--", dialer, "-test.run=^TestHelperDialUnixSocket$")...)
	cmd.Env = append(os.Environ(), "AF_DIAL_SOCKET="+sock)
	return cmd.CombinedOutput()
}

// TestHelperDialUnixSocket is dialAs's child: it only connects.
func TestHelperDialUnixSocket(t *testing.T) {
	sock := os.Getenv("AF_DIAL_SOCKET")
	if sock == "" {
		return // not a child of dialAs
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}
