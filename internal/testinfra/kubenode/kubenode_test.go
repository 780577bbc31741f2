//go:build e2enode

package kubenode

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod really runs on the node, and Stop leaves nothing of the node
// behind: no process serving its containerd, no mount under its directory,
// no kubepods cgroup, no directory.
func TestNodeRunsAPodAndStopLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	files, err := BusyboxFiles()
	if err != nil {
		t.Fatal(err)
	}
	const img = "af-builder.test/busybox:kubenode"
	n, err := Start(ctx, Options{Images: []Image{{Name: img, Files: files, Env: []string{imagePATH}, Cmd: []string{"sh"}}}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			n.Stop()
		}
	}()
	for _, s := range n.Timings {
		t.Logf("%-24s %s", s.Step, s.Took.Round(time.Millisecond))
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			HostNetwork:   true,
			Containers: []corev1.Container{{
				Name: "hello", Image: img, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", "echo hello from the node; id -u"},
			}},
		},
	}
	if _, err := n.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	for ctx.Err() == nil {
		p, err := n.Client.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		phase = p.Status.Phase
		if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if phase != corev1.PodSucceeded {
		t.Fatalf("pod ended %s, want Succeeded", phase)
	}
	logs, err := n.Client.CoreV1().Pods("default").GetLogs("hello", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("pod logs through the apiserver and kubelet: %v", err)
	}
	if !strings.Contains(string(logs), "hello from the node") {
		t.Errorf("pod logs = %q", logs)
	}

	dir, sock := n.Dir, n.ctrdSock
	stopped = true
	if err := n.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop: %v", dir, err)
	}
	if d := kubepodsDirs(); len(d) > 0 {
		t.Errorf("kubepods cgroups left behind: %v", d)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Errorf("mounts under %s left behind", dir)
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, _ := exec.Command(bin, "-w", "5", "-t", table, "-S").Output()
			if strings.Contains(string(out), "KUBE-") {
				t.Errorf("%s table %s still has the kubelet's chains:\n%s", bin, table, out)
			}
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && (strings.Contains(string(cmd), sock) || strings.Contains(string(cmd), dir+"/")) {
			t.Errorf("process %s left behind: %s", e.Name(), strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
}
