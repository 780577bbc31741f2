// Package kubenode starts a complete single-node Kubernetes for tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet on
// Debian's containerd and runc, all on 127.0.0.1 with free ports and private
// directories. Unlike the apiserver-only control plane of kubetest, pods
// really run here, and the garbage collector, Job, TTL and ServiceAccount
// controllers are the real ones.
//
// Nothing can be pulled on the test machines, so images are written as
// docker-save archives by Go code (images.go) and imported into the node's
// own containerd; pods must use imagePullPolicy Never.
//
// Needs root (the kubelet manages cgroups and mounts), the Debian packages
// containerd, runc and containernetworking-plugins, and the Kubernetes
// binaries from `tools/kube/build.sh --node` (KUBE_NODE_ASSETS, else
// KUBEBUILDER_ASSETS, else ~/.cache/af-builder/kube/v1.35.4). Missing parts
// make Start fail and say how to get them; they never turn into a skip.
//
// The setup follows the measured recipe: cgroup v1 needs failCgroupV1:
// false in the kubelet; containerd needs restrict_oom_score_adj because
// root here lacks CAP_SYS_RESOURCE; the node name must resolve to 127.0.0.1
// since --node-ip refuses loopback. One node at a time per machine (the
// kubelet's kubepods cgroups are machine-wide): Start waits for a lock.
package kubenode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/alternatefutures/af-builder/internal/testinfra"
	"github.com/alternatefutures/af-builder/internal/testinfra/internal/child"
)

// KubeVersion is the version tools/kube/build.sh builds.
const KubeVersion = "v1.35.4"

// PauseImage is containerd's sandbox image, as its config names it.
const PauseImage = "registry.k8s.io/pause:3.9"

// Options configure Start.
type Options struct {
	// Assets is the directory with etcd, kube-apiserver,
	// kube-controller-manager, kube-scheduler and kubelet; empty means
	// AssetsDir().
	Assets string
	// Images are imported into the node's containerd before it is
	// reported ready. The pause image is always added.
	Images []Image
}

// Node is a running single-node cluster.
type Node struct {
	// Name is the node's name; it resolves to 127.0.0.1.
	Name string
	// Dir holds everything the node writes; Stop removes it.
	Dir string
	// Kubeconfig is a file with system:masters credentials.
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface

	ctrdSock string
	lock     *os.File
	procs    []proc // in start order
	// Timings of the start, for the README's figures.
	Timings []Timing
}

type proc struct {
	name string
	*child.Process
}

// Timing is how long one step of Start took.
type Timing struct {
	Step string
	Took time.Duration
}

// AssetsDir is where the Kubernetes binaries are looked for.
func AssetsDir() string {
	for _, v := range []string{"KUBE_NODE_ASSETS", "KUBEBUILDER_ASSETS"} {
		if d := os.Getenv(v); d != "" {
			return d
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	return filepath.Join(cache, "af-builder", "kube", KubeVersion)
}

// MissingAssetsError says which Kubernetes binaries are missing and how to
// build them.
type MissingAssetsError struct {
	Dir     string
	Missing []string
}

func (e *MissingAssetsError) Error() string {
	return fmt.Sprintf("kubenode: %s missing from %s (build them with: bash tools/kube/build.sh --node)",
		strings.Join(e.Missing, ", "), e.Dir)
}

var assetNames = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"}

// Start brings up the node and returns once it is Ready, its images are
// imported and the default namespace has its ServiceAccount. ctx bounds the
// start only; the node runs until Stop.
func Start(ctx context.Context, opts Options) (n *Node, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("kubenode: must run as root (the kubelet manages cgroups and mounts)")
	}
	assets := opts.Assets
	if assets == "" {
		assets = AssetsDir()
	}
	var missing []string
	for _, b := range assetNames {
		if fi, err := os.Stat(filepath.Join(assets, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return nil, &MissingAssetsError{Dir: assets, Missing: missing}
	}
	bins := map[string]string{}
	for _, b := range []struct{ name, pkg string }{
		{"containerd", "containerd"}, {"ctr", "containerd"}, {"runc", "runc"},
		{"/usr/lib/cni/loopback", "containernetworking-plugins"},
	} {
		p, err := testinfra.LookPath(b.name, b.pkg)
		if err != nil {
			return nil, fmt.Errorf("kubenode: %w", err)
		}
		bins[filepath.Base(b.name)] = p
	}
	name, err := nodeName()
	if err != nil {
		return nil, err
	}

	lock, err := acquireLock(ctx)
	if err != nil {
		return nil, err
	}
	if err := removeStaleCgroups(); err != nil {
		releaseLock(lock)
		return nil, err
	}
	dir, err := child.ShortTempDir("kn")
	if err != nil {
		releaseLock(lock)
		return nil, err
	}
	n = &Node{Name: name, Dir: dir, lock: lock, ctrdSock: filepath.Join(dir, "run", "containerd.sock")}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, n.logTails())
			n.Stop()
			n = nil
		}
	}()
	for _, d := range []string{"pki", "logs", "run", "cni", "etcd", "kubelet", "pods-logs", "volume-plugins", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return n, err
		}
	}
	step := func(s string, start time.Time) { n.Timings = append(n.Timings, Timing{s, time.Since(start)}) }

	t0 := time.Now()
	pki, err := newPKI(filepath.Join(dir, "pki"), name)
	if err != nil {
		return n, fmt.Errorf("kubenode: certificates: %w", err)
	}

	// containerd first: importing images overlaps the control plane's start.
	if err := n.startContainerd(ctx, bins); err != nil {
		return n, err
	}
	step("containerd", t0)
	pause, err := pauseImage()
	if err != nil {
		return n, fmt.Errorf("kubenode: pause image: %w", err)
	}
	type importResult struct {
		err  error
		took time.Duration
	}
	imported := make(chan importResult, 1)
	go func() {
		t := time.Now()
		err := n.Import(ctx, append([]Image{pause}, opts.Images...)...)
		imported <- importResult{err, time.Since(t)}
	}()
	waitImports := func() error {
		r := <-imported
		imported = nil
		n.Timings = append(n.Timings, Timing{"images imported", r.took})
		return r.err
	}
	defer func() {
		// On an early failure, let the import finish before Stop removes
		// its files and stops containerd under it.
		if imported != nil {
			<-imported
		}
	}()

	ports, err := freePorts(7)
	if err != nil {
		return n, err
	}
	etcdClient, etcdPeer, apiPort, cmPort, schedPort, kubeletPort, kubeletHealthz := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := n.start(ctx, "etcd", filepath.Join(assets, "etcd"),
		"--name=kubenode", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubenode="+peerURL,
		// Nothing here needs to survive a crash.
		"--unsafe-no-fsync",
	); err != nil {
		return n, err
	}

	if err := n.start(ctx, "kube-apiserver", filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--tls-cert-file="+pki.apiserverCert, "--tls-private-key-file="+pki.apiserverKey,
		"--client-ca-file="+pki.caCert,
		"--service-account-key-file="+pki.saPub,
		"--service-account-signing-key-file="+pki.saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--kubelet-client-certificate="+pki.adminCert, "--kubelet-client-key="+pki.adminKey,
		"--kubelet-certificate-authority="+pki.caCert,
		// The node's InternalIP is the host's own address; reach the kubelet
		// (logs, exec) by its name, which resolves to 127.0.0.1.
		"--kubelet-preferred-address-types=Hostname",
	); err != nil {
		return n, err
	}

	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	n.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(n.Kubeconfig, server, pki); err != nil {
		return n, err
	}
	if n.Config, err = clientcmd.BuildConfigFromFlags("", n.Kubeconfig); err != nil {
		return n, err
	}
	if n.Client, err = kubernetes.NewForConfig(n.Config); err != nil {
		return n, err
	}
	if err := n.waitFor(ctx, "kube-apiserver ready", 60*time.Second, func(ctx context.Context) (bool, error) {
		body, err := n.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	}); err != nil {
		return n, err
	}
	step("apiserver ready", t0)

	if err := n.start(ctx, "kube-controller-manager", filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+n.Kubeconfig,
		"--authentication-kubeconfig="+n.Kubeconfig, "--authorization-kubeconfig="+n.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(cmPort),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--service-account-private-key-file="+pki.saKey,
		"--root-ca-file="+pki.caCert,
		"--use-service-account-credentials=true",
		"--cluster-signing-cert-file="+pki.caCert, "--cluster-signing-key-file="+pki.caKey,
		"--leader-elect=false",
		"--controllers=*,-nodeipam",
	); err != nil {
		return n, err
	}
	if err := n.start(ctx, "kube-scheduler", filepath.Join(assets, "kube-scheduler"),
		"--kubeconfig="+n.Kubeconfig,
		"--authentication-kubeconfig="+n.Kubeconfig, "--authorization-kubeconfig="+n.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--leader-elect=false",
	); err != nil {
		return n, err
	}

	if err := waitImports(); err != nil {
		return n, err
	}
	kcfg := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(kcfg, []byte(kubeletConfig(n, pki, kubeletPort, kubeletHealthz)), 0o644); err != nil {
		return n, err
	}
	if err := n.start(ctx, "kubelet", filepath.Join(assets, "kubelet"),
		"--config="+kcfg, "--kubeconfig="+n.Kubeconfig,
		"--root-dir="+filepath.Join(dir, "kubelet"),
		"--hostname-override="+name,
	); err != nil {
		return n, err
	}
	if err := n.waitFor(ctx, "node Ready", 90*time.Second, func(ctx context.Context) (bool, error) {
		node, err := n.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return n, err
	}
	step("node Ready", t0)
	if err := n.waitFor(ctx, "default ServiceAccount", 60*time.Second, func(ctx context.Context) (bool, error) {
		_, err := n.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return n, err
	}
	step("default ServiceAccount", t0)
	return n, nil
}

func (n *Node) startContainerd(ctx context.Context, bins map[string]string) error {
	cni := filepath.Join(n.Dir, "cni")
	if err := os.WriteFile(filepath.Join(cni, "10-lo.conflist"),
		[]byte(`{"cniVersion":"0.4.0","name":"lo","plugins":[{"type":"loopback"}]}`), 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(n.Dir, "containerd-root"), filepath.Join(n.Dir, "run", "containerd-state"), n.ctrdSock,
		PauseImage, bins["runc"], filepath.Dir(bins["loopback"]), cni)
	path := filepath.Join(n.Dir, "containerd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := n.start(ctx, "containerd", bins["containerd"], "--config="+path); err != nil {
		return err
	}
	return n.waitFor(ctx, "containerd", 30*time.Second, func(ctx context.Context) (bool, error) {
		return exec.CommandContext(ctx, "ctr", "--address", n.ctrdSock, "version").Run() == nil, nil
	})
}

func (n *Node) start(ctx context.Context, name, path string, args ...string) error {
	p, err := child.Start(context.WithoutCancel(ctx), child.Config{
		Name:        name,
		Path:        path,
		Args:        args,
		LogPath:     filepath.Join(n.Dir, "logs", name+".log"),
		StopTimeout: 15 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("kubenode: %w", err)
	}
	n.procs = append(n.procs, proc{name, p})
	return nil
}

// waitFor polls cond until it holds, a started process exits, or timeout.
func (n *Node) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := cond(cctx)
		ccancel()
		if err != nil {
			return fmt.Errorf("kubenode: waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		for _, p := range n.procs {
			select {
			case <-p.Done():
				return fmt.Errorf("kubenode: waiting for %s: a component exited: %v\n%s", what, p.ExitErr(), p.Tail())
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubenode: %s not reached within %s", what, timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// SeccompDir is where the kubelet reads Localhost seccomp profiles: a pod's
// "localhost/<file>" is <SeccompDir>/<file>.
func (n *Node) SeccompDir() string { return filepath.Join(n.Dir, "kubelet", "seccomp") }

// LogPath is the log file of one component (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, containerd).
func (n *Node) LogPath(component string) string {
	return filepath.Join(n.Dir, "logs", component+".log")
}

func (n *Node) logTails() string {
	if n == nil || n.Dir == "" {
		return ""
	}
	var b strings.Builder
	for _, c := range []string{"containerd", "kube-apiserver", "kubelet"} {
		if t := child.Tail(n.LogPath(c), 15); t != "" {
			fmt.Fprintf(&b, "\n--- %s log (tail) ---\n%s", c, t)
		}
	}
	return b.String()
}

// nodeName is the host name when it resolves to loopback only (the recipe:
// --node-ip refuses 127.0.0.1), else localhost.
func nodeName() (string, error) {
	candidates := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		candidates = append([]string{strings.ToLower(h)}, candidates...)
	}
	for _, c := range candidates {
		addrs, err := net.LookupHost(c)
		if err != nil || len(addrs) == 0 {
			continue
		}
		ok := true
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip == nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
				ok = false
			}
		}
		if ok {
			return c, nil
		}
	}
	return "", errors.New("kubenode: neither the host name nor localhost resolves to 127.0.0.1 alone; add one to /etc/hosts")
}

func freePorts(k int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubenode: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeKubeconfig(path, server string, p *pki) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubenode"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: p.adminCertPEM, ClientKeyData: p.adminKeyPEM}
	cfg.Contexts["kubenode"] = &clientcmdapi.Context{Cluster: "kubenode", AuthInfo: "admin"}
	cfg.CurrentContext = "kubenode"
	return clientcmd.WriteToFile(*cfg, path)
}

func kubeletConfig(n *Node, p *pki, port, healthz int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
clusterDNS: []
resolvConf: /etc/resolv.conf
podLogsDir: %s
volumePluginDir: %s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
fileCheckFrequency: 1s
# The kubelet would otherwise add a KUBE-FIREWALL chain to the host's
# INPUT and OUTPUT; the canary chains it still makes are removed by Stop.
makeIPTablesUtilChains: false
syncFrequency: 5s
`, n.ctrdSock, port, healthz, p.kubeletCert, p.kubeletKey, p.caCert,
		filepath.Join(n.Dir, "pods-logs"), filepath.Join(n.Dir, "volume-plugins"))
}

// Stop tears the node down in the recipe's order and leaves no process,
// mount or cgroup of it behind: pods deleted and waited for, the kubelet,
// scheduler, controller-manager, apiserver and etcd stopped, leftover
// containers killed, containerd stopped, the kubelet's mounts and the
// kubepods cgroups removed, the directory deleted. Safe to call twice.
func (n *Node) Stop() error {
	if n == nil {
		return nil
	}
	var errs []error
	if n.Client != nil && len(n.procs) > 0 {
		n.deleteAllPods()
	}
	// Reverse start order: kubelet, scheduler, controller-manager,
	// apiserver, etcd, containerd.
	for i := len(n.procs) - 1; i >= 0; i-- {
		p := n.procs[i]
		if p.name == "containerd" {
			errs = append(errs, n.killTasks())
		}
		if err := p.Stop(); err != nil && p.name != "kube-apiserver" {
			// The apiserver often needs SIGKILL once etcd is gone
			// (recipe); that is expected, anything else is reported.
			errs = append(errs, err)
		}
	}
	n.procs = nil
	errs = append(errs, n.killShims())
	removeKubeletChains()
	if n.Dir != "" {
		if err := child.UnmountUnder(n.Dir); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, removeCgroups())
		if err := os.RemoveAll(n.Dir); err != nil {
			errs = append(errs, fmt.Errorf("kubenode: remove %s: %w", n.Dir, err))
		}
		n.Dir = ""
	}
	if n.lock != nil {
		releaseLock(n.lock)
		n.lock = nil
	}
	return errors.Join(errs...)
}

// deleteAllPods lets the kubelet stop every pod the normal way (its
// sandboxes, mounts and cgroups go with it) before anything is killed.
func (n *Node) deleteAllPods() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	zero := int64(0)
	pods, err := n.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		_ = n.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}
	for ctx.Err() == nil {
		out, err := exec.CommandContext(ctx, "ctr", "--address", n.ctrdSock, "-n", "k8s.io", "tasks", "ls", "-q").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// killTasks kills what is still running in the node's containerd.
func (n *Node) killTasks() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctr := func(args ...string) ([]byte, error) {
		return exec.CommandContext(ctx, "ctr", append([]string{"--address", n.ctrdSock, "-n", "k8s.io"}, args...)...).CombinedOutput()
	}
	out, err := ctr("tasks", "ls", "-q")
	if err != nil {
		return nil // containerd already gone: killShims handles the rest
	}
	var errs []error
	for _, id := range strings.Fields(string(out)) {
		if out, err := ctr("tasks", "delete", "--force", id); err != nil && !strings.Contains(string(out), "not found") {
			errs = append(errs, fmt.Errorf("kubenode: delete task %s: %v: %s", id, err, out))
		}
	}
	return errors.Join(errs...)
}

// killShims kills any containerd shim (and, by its process group, its
// containers) that still serves this node's containerd: only processes whose
// command line names this node's socket are touched.
func (n *Node) killShims() error {
	var errs []error
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), n.ctrdSock) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kubenode: kill shim %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// Containers lists the containers the node's containerd still knows of in
// the Kubernetes namespace, with their image: what `ctr -n k8s.io c ls`
// shows an operator on the node.
func (n *Node) Containers(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ctr", "--address", n.ctrdSock, "-n", "k8s.io", "containers", "ls").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ctr containers ls: %v: %s", err, out)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "CONTAINER") {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// KillContainer kills the running task of one Kubernetes container with
// SIGKILL, as the kernel's OOM killer or a node problem would: the kubelet
// sees the container die, nobody is asked first.
func (n *Node) KillContainer(ctx context.Context, containerID string) error {
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := exec.CommandContext(ctx, "ctr", "--address", n.ctrdSock, "-n", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr tasks kill %s: %v: %s", id, err, out)
	}
	return nil
}

// Tasks lists the ids of the containers that have a running task in the
// node's containerd (Kubernetes namespace).
func (n *Node) Tasks(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ctr", "--address", n.ctrdSock, "-n", "k8s.io", "tasks", "ls").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ctr tasks ls: %v: %s", err, out)
	}
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// TASK PID STATUS
		if len(f) == 3 && f[0] != "TASK" && f[2] == "RUNNING" {
			ids = append(ids, f[0])
		}
	}
	return ids, nil
}

// kubeletChains are the iptables chains a kubelet creates on the host
// (canaries to notice a flush, the hint for kube-proxy's mode detection,
// and KUBE-FIREWALL should makeIPTablesUtilChains ever be on). Only one
// node runs per machine and nothing else here makes KUBE-* chains.
var kubeletChains = []struct{ table, chain string }{
	{"filter", "KUBE-FIREWALL"}, {"filter", "KUBE-KUBELET-CANARY"},
	{"nat", "KUBE-KUBELET-CANARY"}, {"mangle", "KUBE-KUBELET-CANARY"},
	{"mangle", "KUBE-IPTABLES-HINT"},
}

func removeKubeletChains() {
	for _, bin := range []string{"iptables", "ip6tables"} {
		path, err := testinfra.LookPath(bin, "iptables")
		if err != nil {
			continue
		}
		ipt := func(args ...string) error { return exec.Command(path, append([]string{"-w", "5"}, args...)...).Run() }
		for _, c := range kubeletChains {
			if ipt("-t", c.table, "-n", "-L", c.chain) != nil {
				continue
			}
			for _, from := range []string{"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"} {
				for ipt("-t", c.table, "-D", from, "-j", c.chain) == nil {
				}
			}
			_ = ipt("-t", c.table, "-F", c.chain)
			_ = ipt("-t", c.table, "-X", c.chain)
		}
	}
}
