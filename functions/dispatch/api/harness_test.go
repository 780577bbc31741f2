package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/alternatefutures/af-builder/functions/dispatch/api"
	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp/githubtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

const (
	appID          = 4242
	installationID = 2311213
	owner          = "Codertocat"
	repo           = "Hello-World"
	commitA        = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
	commitB        = "7638417db6d59f3c431d3e1f261cc637155684cd"
)

var (
	webhookSecret  = []byte("whsec-test-webhook-secret-0123456789")
	apiSecret      = []byte("api-secret-for-tests-0123456789abcdef")
	callbackSecret = []byte("callback-secret-for-tests-0123456789ab")
	registryToken  = "ghp_RegistryTokenForTests0123456789abcd"
)

// defaultServices track Codertocat/Hello-World's main branch: "web" builds
// from apps/web, "docs" only when its watch paths change.
func defaultServices() []subscriptions.StaticService {
	return []subscriptions.StaticService{
		{ID: "web", Repository: owner + "/" + repo, Branch: "main", InstallationID: installationID, Image: "ghcr.io/acme/u1--codertocat-hello-world-web", RootDirectory: "apps/web"},
		{ID: "docs", Repository: owner + "/" + repo, Branch: "main", InstallationID: installationID, Image: "ghcr.io/acme/u1--codertocat-hello-world-docs", WatchPaths: []string{"docs/**", "mkdocs.yml"}},
	}
}

type options struct {
	services        []subscriptions.StaticService
	source          subscriptions.Source
	noSupersede     bool
	maxWebhookBytes int64
	// webhookBudget and callbackTimeout replace 8 s and 3 s when set.
	webhookBudget   time.Duration
	callbackTimeout time.Duration
	// logHandler replaces the test log handler (the secret scan captures).
	logHandler slog.Handler
	// now is dispatch's clock; time.Now when nil.
	now func() time.Time
}

// harness is dispatch serving on a real HTTP server, with the fake GitHub
// API, a callback sink that checks tokens as service-cloud-api does, and
// the Kubernetes executor on a fresh namespace of a real kube-apiserver.
type harness struct {
	t    *testing.T
	url  string
	gh   *githubtest.Server
	sink *callbacksink.Sink
	kube k8s.Interface
	ns   string
	exec *cancelWatch
	kenv *kubetest.Env
	srv  *api.Server

	mu        sync.Mutex
	responses []string
}

func start(t *testing.T, o options) *harness {
	t.Helper()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	// The shared admin clientset is throttled at client-go's default 5 QPS;
	// parallel tests would queue behind each other.
	rc := rest.CopyConfig(env.Config)
	rc.QPS, rc.Burst = 200, 400
	kube, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	kcfg := kubernetes.DefaultConfig()
	kcfg.Namespace = ns
	kcfg.RunnerImage = "ghcr.io/alternatefutures/af-builder-runner:test"
	kexec, err := kubernetes.New(kube, kcfg)
	if err != nil {
		t.Fatal(err)
	}

	gh := githubtest.Start(t, appID)
	gh.AddInstallation(installationID, owner, repo)
	minter, err := githubapp.New(githubapp.Options{AppID: appID, PrivateKey: gh.PrivateKeyPEM, APIURL: gh.URL})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sink, err := callbacksink.Start(ctx, callbacksink.Options{Secret: callbackSecret})
	if err != nil {
		t.Fatal(err)
	}

	src := o.source
	if src == nil {
		svcs := o.services
		if svcs == nil {
			svcs = defaultServices()
		}
		static, err := subscriptions.NewStatic(svcs)
		if err != nil {
			t.Fatal(err)
		}
		src = static
	}
	maxWebhook := o.maxWebhookBytes
	if maxWebhook == 0 {
		maxWebhook = 5 << 20
	}
	budget, cbTimeout := 8*time.Second, 3*time.Second
	if o.webhookBudget > 0 {
		budget = o.webhookBudget
	}
	if o.callbackTimeout > 0 {
		cbTimeout = o.callbackTimeout
	}
	exec := &cancelWatch{Executor: kexec, sink: sink, atCancel: map[string]string{}}
	lh := o.logHandler
	if lh == nil {
		lh = slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})
	}

	srv := api.New(api.Config{
		WebhookSecret:     webhookSecret,
		APISecret:         apiSecret,
		CallbackSecret:    callbackSecret,
		CallbackURL:       strings.TrimSuffix(sink.URL(), callbacksink.Path),
		GitHubURL:         "https://github.com",
		RegistryUser:      "af-builder",
		RegistryToken:     registryToken,
		Supersede:         !o.noSupersede,
		MaxWebhookBytes:   maxWebhook,
		MaxAPIBytes:       64 << 10,
		WebhookBudget:     budget,
		CallbackTimeout:   cbTimeout,
		BuildTimeout:      30 * time.Minute,
		LogStreamInterval: 5 * time.Second,
	}, api.Deps{Executor: exec, GitHub: minter, Subscriptions: src, Logger: slog.New(lh),
		// The replay memory, as serve wires it: Leases beside the Jobs.
		Memory: kexec.Records(), Now: o.now})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &harness{t: t, url: hs.URL, gh: gh, sink: sink, kube: kube, ns: ns, exec: exec, kenv: env, srv: srv}
}

// cancelWatch is the executor with a witness: as each Cancel begins it
// notes the status service-cloud-api holds for the build at that moment.
// Deleting the Job SIGTERMs the runner, which then reports FAILED; only a
// CANCELED already stored by then keeps it from winning.
type cancelWatch struct {
	executor.Executor
	sink     *callbacksink.Sink
	mu       sync.Mutex
	atCancel map[string]string
}

func (c *cancelWatch) Cancel(ctx context.Context, id string) error {
	c.mu.Lock()
	c.atCancel[id] = c.sink.State(id)
	c.mu.Unlock()
	return c.Executor.Cancel(ctx, id)
}

// stateAtCancel is the API's status for id when dispatch began deleting
// its Job; ok is false if it never did.
func (h *harness) stateAtCancel(id string) (state string, ok bool) {
	h.exec.mu.Lock()
	defer h.exec.mu.Unlock()
	state, ok = h.exec.atCancel[id]
	return state, ok
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type response struct {
	Code int
	Body []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", r.Code, r.Body)
	}
	return m
}

func (h *harness) do(req *http.Request) response {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	h.mu.Lock()
	h.responses = append(h.responses, string(body))
	for k, vs := range resp.Header {
		h.responses = append(h.responses, k+": "+strings.Join(vs, ","))
	}
	h.mu.Unlock()
	return response{Code: resp.StatusCode, Body: body}
}

// deliver sends a push as GitHub would.
func (h *harness) deliver(event, delivery string, body []byte) response {
	h.t.Helper()
	req := webhooktest.Request(h.url+"/webhooks/github", event, delivery, body, webhookSecret)
	return h.do(req)
}

type auth int

const (
	signed auth = iota
	bearer
	none
)

// call makes a /v1 request as service-cloud-api would.
func (h *harness) call(method, path string, body any, a auth) response {
	h.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			h.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(raw))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch a {
	case signed:
		apiauth.Sign(req, apiSecret, raw, time.Now())
	case bearer:
		req.Header.Set("Authorization", "Bearer "+string(apiSecret))
	}
	return h.do(req)
}

func (h *harness) jobs() []batchv1.Job {
	h.t.Helper()
	l, err := h.kube.BatchV1().Jobs(h.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return l.Items
}

// job returns the Job of a build, or nil.
func (h *harness) job(buildJobID string) *batchv1.Job {
	h.t.Helper()
	for _, j := range h.jobs() {
		if j.Annotations[kubernetes.LabelBuildID] == buildJobID {
			return &j
		}
	}
	return nil
}

func (h *harness) secret(name string) *corev1.Secret {
	h.t.Helper()
	s, err := h.kube.CoreV1().Secrets(h.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return s
}

func buildIDs(jobs []batchv1.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.Annotations[kubernetes.LabelBuildID])
	}
	return out
}

// builderEnv is the builder container's plain env values.
func builderEnv(j *batchv1.Job) map[string]string {
	out := map[string]string{}
	for _, c := range j.Spec.Template.Spec.Containers {
		if c.Name != kubernetes.BuilderContainer {
			continue
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				out[e.Name] = e.Value
			}
		}
	}
	return out
}

// buildsByService indexes a webhook answer's builds.
func buildsByService(t *testing.T, r response) map[string]api.WebhookBuild {
	t.Helper()
	var wr api.WebhookResponse
	if err := json.Unmarshal(r.Body, &wr); err != nil {
		t.Fatalf("answer %d: %q", r.Code, r.Body)
	}
	out := map[string]api.WebhookBuild{}
	for _, b := range wr.Builds {
		out[b.ServiceID] = b
	}
	return out
}

const (
	kubeLabelTrigger = kubernetes.LabelTrigger
	kubeLabelService = kubernetes.LabelServiceID
	kubeLabelBranch  = kubernetes.LabelBranch
)

func ioNopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
