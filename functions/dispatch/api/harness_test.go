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

	"github.com/alternatefutures/af-builder/functions/dispatch/api"
	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/builds"
	"github.com/alternatefutures/af-builder/functions/dispatch/dispatchtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp/githubtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/shared/contract"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

const (
	installationID = dispatchtest.InstallationID
	owner          = dispatchtest.Owner
	repo           = dispatchtest.Repo
	commitA        = dispatchtest.CommitA
	commitB        = dispatchtest.CommitB
)

var (
	webhookSecret  = []byte(dispatchtest.WebhookSecret)
	apiSecret      = []byte(dispatchtest.APISecret)
	callbackSecret = []byte(dispatchtest.CallbackSecret)
	registryToken  = dispatchtest.RegistryToken
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
	// maxInFlight limits concurrent requests (0: none).
	maxInFlight int
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
	core *builds.Service

	mu        sync.Mutex
	responses []string
}

func start(t *testing.T, o options) *harness {
	t.Helper()
	w := dispatchtest.Start(t)
	kexec := w.Executor(t, nil)
	minter := w.Minter(t)
	sink := w.Sink
	kube, ns, env, gh := w.Client, w.Namespace, w.Kube, w.GitHub

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

	log := slog.New(lh)
	core := builds.New(builds.Config{
		CallbackSecret:  callbackSecret,
		CallbackURL:     w.CallbackBase(),
		GitHubURL:       "https://github.com",
		RegistryUser:    "af-builder",
		RegistryToken:   registryToken,
		Runner:          contract.RunnerDefaults{BuildTimeout: 30 * time.Minute, LogStreamInterval: 5 * time.Second},
		Supersede:       !o.noSupersede,
		CallbackTimeout: cbTimeout,
	}, builds.Deps{Executor: exec, GitHub: minter, Subscriptions: src, Logger: log,
		// The replay memory, as serve wires it: Leases beside the Jobs.
		Memory: kexec.Records(), Now: o.now})
	srv := api.New(api.Config{
		WebhookSecret:   webhookSecret,
		APISecret:       apiSecret,
		MaxWebhookBytes: maxWebhook,
		MaxAPIBytes:     64 << 10,
		WebhookBudget:   budget,
		MaxInFlight:     o.maxInFlight,
	}, core, log, o.now)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &harness{t: t, url: hs.URL, gh: gh, sink: sink, kube: kube, ns: ns, exec: exec, kenv: env, srv: srv, core: core}
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

// deliver sends a push as GitHub would, then waits for the work the push
// left running after its answer (superseding, closing reserved builds),
// so that a test sees all of the push's effects.
func (h *harness) deliver(event, delivery string, body []byte) response {
	h.t.Helper()
	resp := h.answer(event, delivery, body)
	h.core.Wait()
	return resp
}

// answer sends a push as GitHub would and returns as soon as it is
// answered.
func (h *harness) answer(event, delivery string, body []byte) response {
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
