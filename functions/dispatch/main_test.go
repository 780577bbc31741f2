package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/dispatchtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp/githubtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

const (
	appID          = dispatchtest.AppID
	installationID = dispatchtest.InstallationID
	owner          = dispatchtest.Owner
	repo           = dispatchtest.Repo
	commit         = dispatchtest.CommitA
	webhookSecret  = dispatchtest.WebhookSecret
	apiSecret      = dispatchtest.APISecret
	callbackSecret = dispatchtest.CallbackSecret
	registryToken  = dispatchtest.RegistryToken
)

// bootstrap builds the binary exactly as infra/lambda/build.sh does for
// deployment: the Lambda custom-runtime name, without the RPC entry point.
func bootstrap(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", path, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build bootstrap: %v\n%s", err, out)
	}
	info, err := exec.Command("go", "version", "-m", path).Output()
	if err != nil || !strings.Contains(string(info), "-tags=lambda.norpc") {
		t.Fatalf("bootstrap was not built with lambda.norpc: %v\n%s", err, info)
	}
	return path
}

// world is everything dispatch talks to: a real kube-apiserver, the fake
// GitHub API, the callback sink.
type world struct {
	env  []string
	ns   string
	kube *kubetest.Env
	sink *callbacksink.Sink
	gh   *githubtest.Server
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := dispatchtest.Start(t)
	return &world{
		ns: w.Namespace, kube: w.Kube, sink: w.Sink, gh: w.GitHub,
		env: append(w.ProcessEnv(t, dispatchtest.WebService()), "LOG_LEVEL=debug"),
	}
}

// process is a running dispatch binary whose log lines are collected.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	addr chan string
}

// serve starts `dispatch serve` on a free port and returns its base URL.
func (w *world) serve(t *testing.T, bin string, extraEnv ...string) (*process, string) {
	t.Helper()
	server := w.run(t, bin, extraEnv, "serve", "--addr", "127.0.0.1:0")
	select {
	case a := <-server.addr:
		return server, "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start:\n%s", server.Logs())
		return nil, ""
	}
}

func (w *world) run(t *testing.T, bin string, extraEnv []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append([]string{}, w.env...), extraEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	p := &process{cmd: cmd, addr: make(chan string, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "dispatch listening" {
				p.addr <- rec.Addr
			}
		}
	}()
	return p
}

func (p *process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// call is one HTTP request, sent three ways.
type call struct {
	name    string
	method  string
	path    string
	query   string
	headers map[string]string
	body    []byte
	sign    bool
}

func (c call) withHeaders() map[string]string {
	h := map[string]string{"Content-Type": "application/json", "User-Agent": "test"}
	for k, v := range c.headers {
		h[k] = v
	}
	if c.sign {
		req, _ := http.NewRequest(c.method, "http://x"+c.path+queryPart(c.query), nil)
		apiauth.Sign(req, []byte(apiSecret), c.body, time.Now())
		for k := range req.Header {
			h[k] = req.Header.Get(k)
		}
	}
	return h
}

func queryPart(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

type answer struct {
	Code        int
	ContentType string
	Body        string
}

func (c call) overHTTP(t *testing.T, base string) answer {
	t.Helper()
	req, err := http.NewRequest(c.method, base+c.path+queryPart(c.query), bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.withHeaders() {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// event renders the call as Lambda delivers it. Function URLs send
// non-text bodies base64-encoded and API Gateway text as it is; both are
// exercised, with lowercase header names as both send them.
func (c call) event(kind string) map[string]any {
	headers := map[string]string{}
	for k, v := range c.withHeaders() {
		headers[strings.ToLower(k)] = v
	}
	headers["content-length"] = strconv.Itoa(len(c.body))
	ctx := map[string]any{
		"accountId":    "anonymous",
		"apiId":        "abcdefghij",
		"domainName":   "abcdefghij.lambda-url.eu-west-1.on.aws",
		"domainPrefix": "abcdefghij",
		"requestId":    "req-" + strings.ReplaceAll(c.name, " ", "-"),
		"routeKey":     "$default",
		"stage":        "$default",
		"time":         time.Now().UTC().Format("02/Jan/2006:15:04:05 +0000"),
		"timeEpoch":    time.Now().UnixMilli(),
		"http": map[string]any{
			"method": c.method, "path": c.path, "protocol": "HTTP/1.1",
			"sourceIp": "140.82.115.1", "userAgent": "test",
		},
	}
	ev := map[string]any{
		"version":        "2.0",
		"rawPath":        c.path,
		"rawQueryString": c.query,
		"headers":        headers,
		"requestContext": ctx,
	}
	switch kind {
	case "function-url":
		headers["host"] = "abcdefghij.lambda-url.eu-west-1.on.aws"
		if len(c.body) > 0 {
			ev["body"] = base64.StdEncoding.EncodeToString(c.body)
			ev["isBase64Encoded"] = true
		} else {
			ev["isBase64Encoded"] = false
		}
	case "apigw-v2":
		headers["host"] = "abcdefghij.execute-api.eu-west-1.amazonaws.com"
		ctx["domainName"] = headers["host"]
		ev["routeKey"] = "$default"
		ev["body"] = string(c.body)
		ev["isBase64Encoded"] = false
	}
	return ev
}

func (c call) overLambda(t *testing.T, rt *runtimeAPI, kind string) answer {
	t.Helper()
	resp := rt.InvokeHTTP(t, c.event(kind))
	body := resp.Body
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	}
	return answer{resp.StatusCode, resp.Headers["Content-Type"], body}
}

func TestBootstrapUnderTheLambdaRuntimeAnswersAsTheHTTPServerDoes(t *testing.T) {
	bin := bootstrap(t)
	w := newWorld(t)

	// No reaping by the server: the scheduled event below is to find the
	// lost build.
	server, base := w.serve(t, bin, "REAP_INTERVAL=0")

	rt := startRuntimeAPI(t)
	fn := w.run(t, bin, []string{"AWS_LAMBDA_RUNTIME_API=" + rt.Addr(), "AWS_LAMBDA_FUNCTION_NAME=af-dispatch",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_REGION=eu-west-1"})
	t.Cleanup(rt.Close)

	push := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, After: commit,
		Commits: []webhooktest.Commit{{Message: "Landing page", Modified: []string{"apps/web/page.tsx"}}}}.Payload()
	delivery := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-Hub-Signature-256": webhooktest.Signature([]byte(webhookSecret), push)}
	ping := webhooktest.Ping(1)
	buildReq, _ := json.Marshal(map[string]any{
		"buildJobId": "bj-lambda-1", "installationId": installationID, "repoOwner": owner, "repoName": repo,
		"commitSha": commit, "imageTag": "ghcr.io/acme/web:" + commit[:12], "rootDirectory": "apps/web",
		"buildCommandB64": base64.StdEncoding.EncodeToString([]byte(`echo "quoted" && make`)),
	})

	calls := []call{
		{name: "healthz", method: "GET", path: "/healthz"},
		{name: "ping", method: "POST", path: "/webhooks/github", body: ping,
			headers: map[string]string{"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-ping", "X-Hub-Signature-256": webhooktest.Signature([]byte(webhookSecret), ping)}},
		{name: "bad signature", method: "POST", path: "/webhooks/github", body: push,
			headers: map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-bad", "X-Hub-Signature-256": webhooktest.Signature([]byte("wrong"), push)}},
		// First through the server (creating the Job), then as Lambda
		// events: the redeliveries must answer exactly the same.
		{name: "push", method: "POST", path: "/webhooks/github", body: push, headers: delivery},
		{name: "create build", method: "POST", path: "/v1/builds", body: buildReq, sign: true},
		{name: "build status", method: "GET", path: "/v1/builds/bj-lambda-1", sign: true},
		{name: "unsigned", method: "POST", path: "/v1/builds", body: buildReq},
		{name: "invalid", method: "POST", path: "/v1/builds", body: []byte(`{"buildJobId":"bj 2","installationId":"x1"}`), sign: true},
		{name: "unknown route", method: "GET", path: "/nope"},
	}
	for _, c := range calls {
		want := c.overHTTP(t, base)
		for _, kind := range []string{"function-url", "apigw-v2"} {
			got := c.overLambda(t, rt, kind)
			if got != want {
				t.Errorf("%s over %s:\n got  %+v\n want %+v", c.name, kind, got, want)
			}
		}
		if c.name == "push" && want.Code != http.StatusAccepted || c.name == "create build" && want.Code != http.StatusAccepted {
			t.Errorf("%s: %+v", c.name, want)
		}
	}

	jobs, err := w.kube.Kube.BatchV1().Jobs(w.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 2 {
		t.Errorf("%d jobs; want one for the push and one for the API build, each created once", len(jobs.Items))
	}

	t.Run("cancel through a Function URL event", func(t *testing.T) {
		del := call{name: "cancel", method: "DELETE", path: "/v1/builds/bj-lambda-1", sign: true}
		got := del.overLambda(t, rt, "function-url")
		if got.Code != http.StatusOK || !strings.Contains(got.Body, `"state":"canceled"`) {
			t.Fatalf("cancel: %+v", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if d, err := w.sink.WaitTerminal(ctx, "bj-lambda-1"); err != nil || d.Status != "CANCELED" {
			t.Fatalf("callback: %+v %v", d, err)
		}
		if again, viaServer := del.overLambda(t, rt, "apigw-v2"), del.overHTTP(t, base); again != viaServer || again.Code != http.StatusNotFound {
			t.Errorf("second cancel: lambda %+v server %+v", again, viaServer)
		}
	})

	t.Run("an event the function cannot decode goes to /error and the loop goes on", func(t *testing.T) {
		res := rt.Invoke(t, []byte(`[1,2,3]`), 10*time.Second)
		if res.Kind != "error" || !strings.Contains(string(res.Body), "errorMessage") {
			t.Fatalf("result %s: %s", res.Kind, res.Body)
		}
		if got := (call{name: "after error", method: "GET", path: "/healthz"}).overLambda(t, rt, "function-url"); got.Code != http.StatusOK {
			t.Errorf("healthz after the error: %+v", got)
		}
	})

	t.Run("an EventBridge scheduled event runs the reaper", func(t *testing.T) {
		ctx := context.Background()
		// The push's build is what is left; its runner is OOM-killed.
		left, err := w.kube.Kube.BatchV1().Jobs(w.ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(left.Items) != 1 {
			t.Fatalf("jobs left: %v, %v; want the push's", left, err)
		}
		job := &left.Items[0]
		id := job.Annotations[kubernetes.LabelBuildID]
		w.kube.PodOf(t, job, kubetest.Terminated(kubernetes.BuilderContainer, 137, "OOMKilled"))

		scheduled := []byte(`{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event",` +
			`"source":"aws.events","account":"123456789012","time":"2026-11-24T15:00:00Z","region":"eu-west-1",` +
			`"resources":["arn:aws:events:eu-west-1:123456789012:rule/af-dispatch-Reaper"],"detail":{}}`)
		for i, want := range []string{`{"reaped":1}`, `{"reaped":0}`} {
			res := rt.Invoke(t, scheduled, 30*time.Second)
			if res.Kind != "response" || strings.TrimSpace(string(res.Body)) != want {
				t.Fatalf("scheduled event %d: %s %s, want %s", i+1, res.Kind, res.Body, want)
			}
		}
		ds := w.sink.Deliveries(id)
		var failed int
		for _, d := range ds {
			if d.Status == "FAILED" && d.Accepted() {
				failed++
			}
		}
		if failed != 1 || len(ds) != 1 {
			t.Errorf("deliveries for %s: %d, %d FAILED accepted; want exactly one FAILED", id, len(ds), failed)
		}
	})

	for name, logs := range map[string]string{"server": server.Logs(), "function": fn.Logs()} {
		for _, s := range append([]string{webhookSecret, apiSecret, callbackSecret, registryToken}, w.gh.Tokens()...) {
			if strings.Contains(logs, s) {
				t.Errorf("the %s's logs contain a secret", name)
			}
		}
	}
	if !strings.Contains(fn.Logs(), "dispatch starting under AWS Lambda") {
		t.Errorf("the function did not run in Lambda mode:\n%s", fn.Logs())
	}
	if len(rt.initErrors) > 0 {
		t.Errorf("init errors: %v", rt.initErrors)
	}
}

func TestServeReapsLostBuildsEveryReapInterval(t *testing.T) {
	bin := bootstrap(t)
	w := newWorld(t)
	server, base := w.serve(t, bin, "REAP_INTERVAL=200ms")
	const id = "bj-reap-serve-1"
	body, _ := json.Marshal(map[string]any{
		"buildJobId": id, "installationId": installationID, "repoOwner": owner, "repoName": repo,
		"commitSha": commit, "imageTag": "ghcr.io/acme/web:" + commit[:12],
	})
	if got := (call{name: "create", method: "POST", path: "/v1/builds", body: body, sign: true}).overHTTP(t, base); got.Code != http.StatusAccepted {
		t.Fatalf("create build: %+v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	jobs, err := w.kube.Kube.BatchV1().Jobs(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 1 {
		t.Fatalf("jobs: %v, %v", jobs, err)
	}
	w.kube.PodOf(t, &jobs.Items[0], kubetest.Terminated(kubernetes.BuilderContainer, 137, "OOMKilled"))

	d, err := w.sink.WaitTerminal(ctx, id)
	if err != nil || d.Status != "FAILED" || !d.Accepted() {
		t.Fatalf("terminal callback: %+v, %v\n%s", d, err, server.Logs())
	}
	// Several more rounds: none reports it again.
	time.Sleep(time.Second)
	if n := len(w.sink.Deliveries(id)); n != 1 {
		t.Errorf("%d deliveries for %s, want exactly one", n, id)
	}
	if !strings.Contains(server.Logs(), "reported a lost build FAILED") {
		t.Errorf("the reaper's report is not in the log:\n%s", server.Logs())
	}
}
