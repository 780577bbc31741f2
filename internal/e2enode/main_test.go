//go:build e2enode

package e2enode

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp/githubtest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/kubenode"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
)

const (
	appID          = 4242
	installationID = 7001
	owner          = "e2e"
	module         = "github.com/alternatefutures/af-builder"

	runnerImage = "af-builder.test/runner:e2e"
	dindImage   = "af-builder.test/dind:e2e"
	// brokenDind has a dockerd that never listens: the sidecar runs but the
	// engine never becomes ready.
	brokenDind = "af-builder.test/dind-never-ready:e2e"
)

// The repositories the tests push to, one per test so that builds of one
// test never meet another's.
var repos = []string{"success", "cancel", "supersede", "deadline", "timeout", "killed", "nodind", "buildkit", "unscheduled", "drained", "unstartable"}

// suite is everything the tests share: one node, one registry, one git
// server, the GitHub App API stand-in and the platform API stand-in, all on
// 127.0.0.1.
var suite struct {
	node        *kubenode.Node
	reg         *registry.Registry
	git         *gitserver.Server
	repos       map[string]*gitserver.Repo
	gh          *githubtest.Server
	sink        *callbacksink.Sink
	dispatchBin string
	dir         string
	busybox     []byte

	webhookSecret, callbackSecret, apiSecret string
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2enode:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(m *testing.M) (code int, err error) {
	// Generous: a cold Go build cache on a loaded two-core machine takes
	// minutes for the three binaries.
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	var stops []func() error
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			if serr := stops[i](); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	if suite.dir, err = os.MkdirTemp("", "e2enode"); err != nil {
		return 1, err
	}
	stops = append(stops, func() error { return os.RemoveAll(suite.dir) })
	suite.webhookSecret, suite.callbackSecret, suite.apiSecret = secret(), secret(), secret()

	start := time.Now()
	bins, err := buildBinaries(ctx, suite.dir)
	if err != nil {
		return 1, err
	}
	suite.dispatchBin = bins["dispatch"]
	fmt.Printf("e2enode: binaries built in %s\n", time.Since(start).Round(time.Millisecond))

	runner, err := kubenode.RunnerImage(runnerImage, bins["runner"], bins["nixpacks"])
	if err != nil {
		return 1, err
	}
	dind, err := kubenode.DindImage(dindImage)
	if err != nil {
		return 1, err
	}
	broken, err := neverReadyDind()
	if err != nil {
		return 1, err
	}
	if suite.busybox, err = os.ReadFile("/bin/busybox"); err != nil {
		return 1, err
	}

	start = time.Now()
	nodeCtx, nodeCancel := context.WithTimeout(ctx, 5*time.Minute)
	defer nodeCancel()
	suite.node, err = kubenode.Start(nodeCtx, kubenode.Options{Images: []kubenode.Image{runner, dind, broken}})
	if err != nil {
		return 1, err
	}
	stops = append(stops, suite.node.Stop)
	fmt.Printf("e2enode: node %s ready in %s:", suite.node.Name, time.Since(start).Round(time.Millisecond))
	for _, s := range suite.node.Timings {
		fmt.Printf(" %s %s;", s.Step, s.Took.Round(time.Millisecond))
	}
	fmt.Println()

	if suite.reg, err = registry.Start(ctx, registry.Options{User: "e2e", Password: secret()}); err != nil {
		return 1, err
	}
	stops = append(stops, suite.reg.Stop)
	if suite.git, err = gitserver.Start(ctx, gitserver.Options{Token: secret()}); err != nil {
		return 1, err
	}
	stops = append(stops, suite.git.Stop)
	suite.repos = map[string]*gitserver.Repo{}
	for _, r := range repos {
		if suite.repos[r], err = suite.git.CreateRepo(owner + "/" + r); err != nil {
			return 1, err
		}
	}
	if suite.gh, err = githubtest.New(appID); err != nil {
		return 1, err
	}
	stops = append(stops, func() error { suite.gh.Close(); return nil })
	suite.gh.AddInstallation(installationID, owner, repos...)
	// The clone token is whatever the App token API issued last; the tests
	// run one build at a time.
	suite.gh.OnIssue(func(i githubtest.Issued) { suite.git.AcceptToken(i.Token) })
	sinkCtx, stopSink := context.WithCancel(context.Background())
	if suite.sink, err = callbacksink.Start(sinkCtx, callbacksink.Options{Secret: []byte(suite.callbackSecret)}); err != nil {
		stopSink()
		return 1, err
	}
	stops = append(stops, func() error { stopSink(); return suite.sink.Stop() })

	return m.Run(), nil
}

// buildBinaries builds dispatch, the runner (as the Dockerfile does) and the
// Nixpacks stand-in.
func buildBinaries(ctx context.Context, dir string) (map[string]string, error) {
	out := map[string]string{}
	for name, pkg := range map[string]string{
		"dispatch": module + "/functions/dispatch",
		"runner":   module + "/runner",
		"nixpacks": module + "/internal/testinfra/nixpacksstandin",
	} {
		p := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", p, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		out[name] = p
	}
	return out, nil
}

// neverReadyDind is a dind image whose dockerd starts and then never
// listens, like an engine stuck on a bad storage driver.
func neverReadyDind() (kubenode.Image, error) {
	files, err := kubenode.BusyboxFiles()
	if err != nil {
		return kubenode.Image{}, err
	}
	files = append(files, kubenode.TextFile("/usr/local/bin/dockerd",
		// It stops on SIGTERM, as dockerd does: a sleep as PID 1 ignores
		// it, and the pod would then wait out its 2-minute grace period.
		"#!/bin/sh\necho \"dockerd $*: stuck, never listening\"\ntrap 'exit 143' TERM INT\nsleep 2147483647 &\nwait\n", 0o755))
	return kubenode.Image{
		Name:  brokenDind,
		Files: files,
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd:   []string{"dockerd"},
	}, nil
}

func secret() string {
	b := make([]byte, 20)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dispatch is one `dispatch serve` with EXECUTOR=kubernetes against the
// node, in a namespace of its own.
type dispatch struct {
	url      string
	ns       string
	repo     *gitserver.Repo
	service  string
	dindPort int
	mu       sync.Mutex
	logs     strings.Builder
}

// startDispatch runs dispatch serve for the test's repository. extra
// overrides the environment (BUILD_TIMEOUT, DIND_IMAGE, ...).
func startDispatch(t *testing.T, repo string, extra ...string) *dispatch {
	t.Helper()
	ctx := context.Background()
	d := &dispatch{ns: "e2e-" + repo, repo: suite.repos[repo], service: "svc-" + repo}
	_, err := suite.node.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: d.ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	subs := filepath.Join(dir, "subscriptions.yaml")
	if err := os.WriteFile(subs, []byte(fmt.Sprintf(`services:
  - id: %s
    repository: %s/%s
    branch: main
    installationId: %d
    image: %s/e2e/%s
`, d.service, owner, repo, installationID, suite.reg.Addr(), repo)), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(key, suite.gh.PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, port := freeAddr(t), freePort(t)
	d.url, d.dindPort = "http://"+addr, port
	cmd := exec.Command(suite.dispatchBin, "serve", "--addr", addr)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"EXECUTOR=kubernetes",
		"K8S_AUTH=kubeconfig",
		"K8S_KUBECONFIG=" + suite.node.Kubeconfig,
		"K8S_NAMESPACE=" + d.ns,
		"RUNNER_IMAGE=" + runnerImage,
		"DIND_IMAGE=" + dindImage,
		// The images were imported into the node; nothing can be pulled.
		"K8S_IMAGE_PULL_POLICY=Never",
		// The one test-only setting: the pod on the host network, where
		// the registry, git server and platform API listen on 127.0.0.1.
		fmt.Sprintf("K8S_TEST_HOST_NETWORK_DIND_PORT=%d", port),
		"K8S_JOB_TTL=10s",
		"REAP_INTERVAL=2s",
		"LOG_STREAM_INTERVAL=1s",
		"GITHUB_WEBHOOK_SECRET=" + suite.webhookSecret,
		fmt.Sprintf("GITHUB_APP_ID=%d", appID),
		"GITHUB_APP_PRIVATE_KEY_FILE=" + key,
		"GITHUB_API_URL=" + suite.gh.URL,
		"GITHUB_URL=" + suite.git.URL(),
		"CALLBACK_URL=" + strings.TrimSuffix(suite.sink.URL(), callbacksink.Path),
		"CALLBACK_SECRET=" + suite.callbackSecret,
		"API_AUTH_SECRET=" + suite.apiSecret,
		"REGISTRY_USER=" + suite.reg.User(),
		"REGISTRY_TOKEN=" + suite.reg.Password(),
		"SUBSCRIPTIONS_FILE=" + subs,
		"LOG_FORMAT=text",
	}, extra...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.logs.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			d.dumpPods(t)
		}
		// While dispatch runs: its reaper lets go of the finalizer that
		// holds the Jobs of builds in flight once they are deleted.
		d.cleanNamespace(t)
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { <-copied; cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("dispatch log:\n%s", d.Logs())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.url + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dispatch did not answer /healthz:\n%s", d.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *dispatch) Logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// dumpPods logs the namespace's pods and their containers' states, for a
// failing test.
func (d *dispatch) dumpPods(t *testing.T) {
	pods, err := suite.node.Client.CoreV1().Pods(d.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		b, _ := json.MarshalIndent(p.Status, "", "  ")
		t.Logf("pod %s status:\n%s", p.Name, b)
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			logs, _ := suite.node.Client.CoreV1().Pods(d.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(context.Background())
			t.Logf("pod %s container %s log:\n%s", p.Name, c.Name, logs)
		}
	}
}

// cleanNamespace deletes the test's namespace and waits until its pods are
// gone, so that the next test starts on an idle node.
func (d *dispatch) cleanNamespace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	zero := int64(0)
	pods, _ := suite.node.Client.CoreV1().Pods(d.ns).List(ctx, metav1.ListOptions{})
	if pods != nil {
		for _, p := range pods.Items {
			suite.node.Client.CoreV1().Pods(d.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}
	}
	suite.node.Client.CoreV1().Namespaces().Delete(ctx, d.ns, metav1.DeleteOptions{})
	for ctx.Err() == nil {
		if _, err := suite.node.Client.CoreV1().Namespaces().Get(ctx, d.ns, metav1.GetOptions{}); err != nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("namespace %s not gone within 3m", d.ns)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// App sources.
var (
	quickApp = map[string]gitserver.File{
		"Dockerfile": gitserver.Text("FROM scratch\nCOPY hello.txt /hello.txt\n"),
		"hello.txt":  gitserver.Text("built on a real node\n"),
	}
)

// slowApp builds for ten minutes: a RUN step that sleeps, in an image that
// has nothing but busybox (no base image can be pulled).
func slowApp() map[string]gitserver.File {
	return map[string]gitserver.File{
		"Dockerfile": gitserver.Text("FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sleep\", \"600\"]\n"),
		"busybox":    gitserver.File{Content: string(suite.busybox), Mode: fs.FileMode(0o755)},
	}
}
