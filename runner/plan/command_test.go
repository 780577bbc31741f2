package plan

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shells are the real shells a rendered command meets: dash or bash as
// /bin/sh (Debian, Ubuntu, nixpacks images) and busybox (Alpine, the test
// images).
func shells(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{"/bin/sh": {"/bin/sh"}}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox is needed to check rendering under busybox sh (scripts/deps.sh installs busybox-static): %v", err)
	}
	out["busybox"] = []string{bb, "sh"}
	return out
}

// run executes line the way a Dockerfile RUN does: sh -c LINE.
func run(t *testing.T, sh []string, dir, line string) (string, error) {
	t.Helper()
	cmd := exec.Command(sh[0], append(sh[1:], "-c", line)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GREETING=hello"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestShellLineRunsAMultiLineCommandAsOneScript(t *testing.T) {
	script := strings.Join([]string{
		`echo "it's $GREETING" > out.txt`,
		`printf '%s\n' '100% \n literal' >> out.txt`,
		`if [ -f out.txt ]; then`,
		`  echo 'block spans lines' >> out.txt`,
		`fi`,
		`cat <<EOF >> out.txt`,
		`heredoc $GREETING`,
		`EOF`,
		``,
		"\techo tabbed >> out.txt",
	}, "\n")
	line := ShellLine(script)
	if strings.Contains(line, "\n") {
		t.Fatalf("rendered command spans lines: %q", line)
	}
	want := "it's hello\n100% \\n literal\nblock spans lines\nheredoc hello\ntabbed\n"
	for name, sh := range shells(t) {
		dir := t.TempDir()
		if out, err := run(t, sh, dir, line); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "out.txt"))
		if string(got) != want {
			t.Errorf("%s: the script wrote %q, want %q", name, got, want)
		}
	}
}

func TestShellLineStopsAtTheFirstFailingLine(t *testing.T) {
	line := ShellLine("echo first > out.txt\nfalse\necho never >> out.txt")
	for name, sh := range shells(t) {
		dir := t.TempDir()
		if out, err := run(t, sh, dir, line); err == nil {
			t.Errorf("%s: a script whose second line fails succeeded: %s", name, out)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(got) != "first\n" {
			t.Errorf("%s: out.txt = %q; the script went on after the failing line", name, got)
		}
	}
}

func TestShellLineLeavesAOneLineCommandAlone(t *testing.T) {
	for _, c := range []string{"npm run build", `sh -c 'echo "$PORT"'`, "a && b || c"} {
		if got := ShellLine(c); got != c {
			t.Errorf("ShellLine(%q) = %q", c, got)
		}
	}
}
