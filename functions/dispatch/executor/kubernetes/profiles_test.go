package kubernetes

import (
	"encoding/json"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const seccompProfilePath = "../../../../infra/k8s/builder/profiles/af-buildkitd.json"

// rootlessSyscalls are what rootlesskit and runc need beyond the default
// profile's unprivileged set: making a user namespace and the others below
// it, and mounting inside them. The default profile grants them only with
// CAP_SYS_ADMIN, which buildkitd does not have outside its user namespace.
var rootlessSyscalls = []string{
	"clone", "unshare", "setns",
	"mount", "umount", "umount2", "pivot_root", "chroot",
	"mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
	"sethostname", "setdomainname",
}

// keyringSyscalls get ENOSYS, which runc takes as "no keyrings here" and
// carries on; the default's EPERM would fail it, and allowing them would
// share the node's per-uid keyrings with every pod of uid 1000.
var keyringSyscalls = []string{"add_key", "keyctl", "request_key"}

// buildkitdSeccomp is the Localhost profile (OCI format, as containerd and
// CRI-O load it) for the buildkitd sidecar: Docker's default profile as
// moby/profiles defines it, resolved for the sidecar's capabilities
// (SETUID and SETGID only), plus the calls above.
func buildkitdSeccomp(t *testing.T) []byte {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the committed profile is generated for amd64 nodes")
	}
	p := seccomp.DefaultProfile()
	p.Syscalls = append(p.Syscalls,
		&seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{Names: rootlessSyscalls, Action: specs.ActAllow}},
		&seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{Names: keyringSyscalls, Action: specs.ActErrno, ErrnoRet: ptr(uint(38))}},
	)
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: []string{"CAP_SETUID", "CAP_SETGID"},
	}}}
	resolved, err := seccomp.LoadProfile(string(raw), spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(resolved, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestBuildKitSeccompProfileIsCurrent(t *testing.T) {
	got := buildkitdSeccomp(t)
	if *update {
		if err := os.WriteFile(seccompProfilePath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(seccompProfilePath)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s is out of date; regenerate it with\n"+
			"  go test ./functions/dispatch/executor/kubernetes -run TestBuildKitSeccompProfileIsCurrent -update",
			seccompProfilePath)
	}
}

// What the profile grants and keeps refusing, read back from the file the
// nodes install.
func TestBuildKitSeccompProfileAllowsRootlessAndLittleElse(t *testing.T) {
	raw, err := os.ReadFile(seccompProfilePath)
	if err != nil {
		t.Fatal(err)
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != specs.ActErrno {
		t.Fatalf("defaultAction %s: the profile must be an allow list", p.DefaultAction)
	}
	unconditional := map[string]specs.LinuxSyscall{}
	for _, s := range p.Syscalls {
		if len(s.Args) > 0 {
			continue
		}
		for _, n := range s.Names {
			unconditional[n] = s
		}
	}
	for _, n := range append(slices.Clone(rootlessSyscalls), "read", "write", "execve") {
		if s, ok := unconditional[n]; !ok || s.Action != specs.ActAllow {
			t.Errorf("%s is not allowed unconditionally", n)
		}
	}
	for _, n := range keyringSyscalls {
		if s, ok := unconditional[n]; !ok || s.Action != specs.ActErrno || s.ErrnoRet == nil || *s.ErrnoRet != 38 {
			t.Errorf("%s should fail with ENOSYS, got %+v", n, s)
		}
	}
	for _, n := range []string{"bpf", "perf_event_open", "kexec_load", "init_module", "finit_module", "delete_module",
		"open_by_handle_at", "reboot", "swapon", "settimeofday", "iopl", "ioperm", "acct", "lookup_dcookie", "syslog"} {
		if s, ok := unconditional[n]; ok && s.Action == specs.ActAllow {
			t.Errorf("%s is allowed; the default profile refuses it without capabilities buildkitd lacks", n)
		}
	}
}
