// Package kubetest gives tests a real Kubernetes API server (kube-apiserver
// and etcd through controller-runtime's envtest): one control plane per test
// binary, a fresh namespace per test, and client configurations for
// ServiceAccounts, so RBAC is exercised as in a cluster.
//
// The control plane has no controller-manager and no kubelet: Jobs never get
// pods, owned objects are never garbage-collected, ServiceAccounts are not
// created by default and namespaces never finish deleting. Tests check API
// objects, and simulate controllers by writing status subresources.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		env := kubetest.Start(t)   // fails (or skips under -short) without binaries
//		ns := env.Namespace(t)
//		...
//	}
//
// The binaries come from tools/kube/build.sh, found through
// KUBEBUILDER_ASSETS or in ~/.cache/af-builder/kube/<version>.
package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// KubeVersion is the kube-apiserver version tools/kube/build.sh builds.
const KubeVersion = "v1.35.4"

// Env is a running control plane.
type Env struct {
	// Config authenticates as an administrator (system:masters).
	Config *rest.Config
	// Kube is a clientset and Client a controller-runtime client, both admin.
	Kube   k8s.Interface
	Client client.Client
	// StartupTime is how long the control plane took to come up.
	StartupTime time.Duration
}

var (
	mu       sync.Mutex
	started  bool
	shared   *Env
	startErr error
	testEnv  *envtest.Environment
	inMain   bool
)

// Main runs the package's tests and stops the control plane, if any test
// started one, before the binary exits.
func Main(m *testing.M) {
	mu.Lock()
	inMain = true
	mu.Unlock()
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: stopping control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// AssetsDir is where the kube-apiserver and etcd binaries are expected:
// KUBEBUILDER_ASSETS when set, else build.sh's cache directory.
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	return filepath.Join(cache, "af-builder", "kube", KubeVersion)
}

func checkAssets(dir string) error {
	var missing []string
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if fi, err := os.Stat(filepath.Join(dir, bin)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not found in %s: run tools/kube/build.sh "+
			"(it builds them there; or point KUBEBUILDER_ASSETS at a directory holding them)",
			strings.Join(missing, " and "), dir)
	}
	return nil
}

// Start returns the shared control plane, starting it on first use. Without
// the binaries the test fails, saying how to build them; it is skipped only
// under -short, where slow tests are not expected to run.
func Start(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that needs kube-apiserver and etcd")
	}
	mu.Lock()
	defer mu.Unlock()
	if !inMain {
		t.Fatal("kubetest: call kubetest.Main(m) from TestMain, so the control plane is stopped when the tests end")
	}
	if !started {
		started = true
		shared, startErr = start()
		if startErr == nil {
			t.Logf("kubetest: control plane %s started in %s", KubeVersion, shared.StartupTime.Round(time.Millisecond))
		}
	}
	if startErr != nil {
		t.Fatalf("kubetest: %v", startErr)
	}
	return shared
}

func start() (*Env, error) {
	dir := AssetsDir()
	if err := checkAssets(dir); err != nil {
		return nil, err
	}
	// envtest looks in KUBEBUILDER_ASSETS whenever it is set, even empty
	// (then for "etcd" on $PATH): it must name the directory checked here.
	if err := os.Setenv("KUBEBUILDER_ASSETS", dir); err != nil {
		return nil, err
	}
	// envtest says why a start attempt failed only through
	// controller-runtime's logger, and then retries.
	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil)))
	te := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		// Generous: two shared cores and a race-enabled test binary beside.
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	api := te.ControlPlane.GetAPIServer()
	// envtest defaults to RBAC today; say so explicitly, since the RBAC
	// tests are meaningless under AlwaysAllow.
	api.Configure().Set("authorization-mode", "RBAC")
	begin := time.Now()
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("start control plane from %s: %w", dir, err)
	}
	testEnv = te
	env := &Env{Config: cfg, StartupTime: time.Since(begin)}
	if env.Kube, err = k8s.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("admin clientset: %w", err)
	}
	if env.Client, err = client.New(cfg, client.Options{}); err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return env, nil
}

func stop() error {
	mu.Lock()
	defer mu.Unlock()
	if testEnv == nil {
		return nil
	}
	err := testEnv.Stop()
	testEnv = nil
	return err
}

// UniqueName is a DNS-1123 label derived from the test's name plus a random
// suffix, for namespaces and other per-test objects.
func UniqueName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	return strings.Trim(b.String(), "-") + "-" + hex.EncodeToString(rnd[:])
}

// Namespace creates a fresh namespace for the test. It is deleted at the
// end; without a controller-manager it stays Terminating, which is harmless.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: UniqueName(t)}}
	ctx := context.Background()
	if _, err := e.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create namespace %s: %v", ns.Name, err)
	}
	t.Cleanup(func() {
		_ = e.Kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// ServiceAccountConfig returns a client configuration that authenticates as
// the ServiceAccount namespace/name with a token from the TokenRequest API,
// as a pod's projected token would. The ServiceAccount is created if it does
// not exist (no controller creates them here). The configuration carries no
// client certificate, so requests are authorized by RBAC alone.
func (e *Env) ServiceAccountConfig(t testing.TB, namespace, name string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	sas := e.Kube.CoreV1().ServiceAccounts(namespace)
	_, err := sas.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create serviceaccount %s/%s: %v", namespace, name, err)
	}
	expiry := int64(time.Hour / time.Second)
	tr, err := sas.CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: token for serviceaccount %s/%s: %v", namespace, name, err)
	}
	if tr.Status.Token == "" {
		t.Fatalf("kubetest: token request for %s/%s returned no token", namespace, name)
	}
	cfg := rest.AnonymousClientConfig(e.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg
}

// WriteKubeconfig writes cfg (server, CA, and its bearer token or client
// certificate) as a kubeconfig file in a temporary directory and returns its
// path, for code under test that loads kubeconfig files.
func WriteKubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	if cfg.BearerTokenFile != "" || cfg.ExecProvider != nil || cfg.AuthProvider != nil {
		t.Fatal("kubetest: WriteKubeconfig supports bearer tokens and client certificates only")
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		Token:                 cfg.BearerToken,
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
	}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatalf("kubetest: write kubeconfig: %v", err)
	}
	return path
}

// PodOf does the work of the Job controller and the kubelet, which this
// control plane lacks: it creates the pod job would get (its template,
// owned by the Job) and sets its status to status, as the kubelet would
// report it.
func (e *Env) PodOf(t testing.TB, job *batchv1.Job, status corev1.PodStatus) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: job.Name + "-",
			Namespace:    job.Namespace,
			Labels:       job.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: ptrTo(true),
			}},
		},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	pods := e.Kube.CoreV1().Pods(job.Namespace)
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod of job %s: %v", job.Name, err)
	}
	created.Status = status
	updated, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set status of pod %s: %v", created.Name, err)
	}
	return updated
}

// Terminated is a pod status whose container name ended with exitCode for
// reason, in a pod of phase Failed (or Succeeded for exit 0).
func Terminated(name string, exitCode int32, reason string) corev1.PodStatus {
	now := metav1.Now()
	phase := corev1.PodFailed
	if exitCode == 0 {
		phase = corev1.PodSucceeded
	}
	return corev1.PodStatus{
		Phase: phase,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:  name,
			Image: "runner",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: exitCode, Reason: reason, StartedAt: now, FinishedAt: now,
			}},
		}},
	}
}

func ptrTo[T any](v T) *T { return &v }
