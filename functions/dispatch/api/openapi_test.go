package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

// spec is functions/dispatch/openapi.yaml, checked against the OpenAPI 3.1
// schema and ready to validate requests and answers (libopenapi-validator:
// JSON Schema 2020-12, as 3.1 uses).
func spec(t *testing.T) validator.Validator {
	t.Helper()
	b, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi.yaml is OpenAPI %s, want 3.1", v)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("openapi.yaml: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("openapi.yaml is not a valid OpenAPI 3.1 document: %s", describe(verrs))
	}
	return v
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  " + e.Message + ": " + e.Reason)
		for _, s := range e.SchemaValidationErrors {
			b.WriteString("\n    " + s.FieldPath + " " + s.KeywordLocation + ": " + s.Reason)
		}
	}
	return b.String()
}

// exchange sends one real request to dispatch and checks the answer against
// the spec; with conforming set, the request too (requests that are wrong
// on purpose are checked to be refused by the spec as well).
func exchange(t *testing.T, v validator.Validator, method, url string, body []byte, header map[string]string, conforming bool) (int, map[string]any) {
	t.Helper()
	mk := func() *http.Request {
		r, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, val := range header {
			r.Header.Set(k, val)
		}
		return r
	}
	ok, errs := v.ValidateHttpRequestSync(mk())
	switch {
	case conforming && !ok:
		t.Errorf("%s %s: the request does not conform to openapi.yaml: %s", method, url, describe(errs))
	case !conforming && ok:
		t.Errorf("%s %s: openapi.yaml accepts a request dispatch refuses", method, url)
	}
	resp, err := http.DefaultClient.Do(mk())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	if ok, errs := v.ValidateHttpResponse(mk(), resp); !ok {
		t.Errorf("%s %s: answer %d %s does not conform to openapi.yaml: %s", method, url, resp.StatusCode, raw, describe(errs))
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func signedHeaders(method, target string, body []byte) map[string]string {
	r, _ := http.NewRequest(method, "http://x"+target, nil)
	apiauth.Sign(r, apiSecret, body, time.Now())
	return map[string]string{"Content-Type": "application/json",
		"X-AF-Timestamp": r.Header.Get("X-AF-Timestamp"), "X-AF-Signature": r.Header.Get("X-AF-Signature")}
}

func TestOpenAPIDescribesTheRealRequestsAndAnswers(t *testing.T) {
	t.Parallel()
	v := spec(t)
	h := start(t, options{})
	post := func(body map[string]any, conforming bool, headers func([]byte) map[string]string) (int, map[string]any) {
		b, _ := json.Marshal(body)
		return exchange(t, v, "POST", h.url+"/v1/builds", b, headers(b), conforming)
	}
	sign := func(method, target string) func([]byte) map[string]string {
		return func(b []byte) map[string]string { return signedHeaders(method, target, b) }
	}
	noAuth := func([]byte) map[string]string { return map[string]string{"Content-Type": "application/json"} }

	if code, _ := exchange(t, v, "GET", h.url+"/healthz", nil, nil, true); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	const id = "bj-openapi-1"
	req := replayRequest(id)
	req["installationId"] = "2311213" // service-cloud-api's bigint arrives as a string
	req["callbackBaseUrl"] = strings.TrimSuffix(h.sink.URL(), "/internal/build-callback")
	if code, _ := post(req, true, sign("POST", "/v1/builds")); code != 202 {
		t.Errorf("create: %d", code)
	}
	if code, _ := post(req, true, sign("POST", "/v1/builds")); code != 202 {
		t.Errorf("repeat: %d", code)
	}
	other := replayRequest(id)
	other["commitSha"] = commitB
	if code, _ := post(other, true, sign("POST", "/v1/builds")); code != 409 {
		t.Errorf("conflict: %d", code)
	}
	dotted := replayRequest("bj.openapi")
	if code, body := post(dotted, false, sign("POST", "/v1/builds")); code != 400 {
		t.Errorf("dotted id: %d %v", code, body)
	}
	if code, _ := post(replayRequest("bj-openapi-2"), false, noAuth); code != 401 {
		t.Errorf("unauthenticated: %d", code)
	}
	if code, _ := exchange(t, v, "GET", h.url+"/v1/builds/"+id, nil, signedHeaders("GET", "/v1/builds/"+id, nil), true); code != 200 {
		t.Errorf("status: %d", code)
	}
	if code, _ := exchange(t, v, "GET", h.url+"/v1/builds/bj-none", nil, signedHeaders("GET", "/v1/builds/bj-none", nil), true); code != 404 {
		t.Errorf("status of an unknown build: %d", code)
	}
	if code, _ := exchange(t, v, "DELETE", h.url+"/v1/builds/"+id, nil, signedHeaders("DELETE", "/v1/builds/"+id, nil), true); code != 200 {
		t.Errorf("cancel: %d", code)
	}
	if code, _ := exchange(t, v, "DELETE", h.url+"/v1/builds/"+id, nil, signedHeaders("DELETE", "/v1/builds/"+id, nil), true); code != 404 {
		t.Errorf("cancel again: %d", code)
	}
	if code, body := exchange(t, v, "GET", h.url+"/v1/builds/"+id, nil, signedHeaders("GET", "/v1/builds/"+id, nil), true); code != 200 || body["replayed"] != true {
		t.Errorf("status after cancel: %d %v", code, body)
	}
	if code, body := post(req, true, sign("POST", "/v1/builds")); code != 202 || body["replayed"] != true {
		t.Errorf("repeat after cancel: %d %v", code, body)
	}

	hook := func(event, delivery string, body []byte) int {
		r := webhooktest.Request(h.url+"/webhooks/github", event, delivery, body, webhookSecret)
		hdr := map[string]string{}
		for k := range r.Header {
			hdr[k] = r.Header.Get(k)
		}
		code, _ := exchange(t, v, "POST", h.url+"/webhooks/github", body, hdr, true)
		return code
	}
	if code := hook("ping", "d-oa-ping", webhooktest.Ping(1)); code != 200 {
		t.Errorf("ping: %d", code)
	}
	if code := hook("installation", "d-oa-inst", []byte(`{"action":"created","installation":{"id":1}}`)); code != 202 {
		t.Errorf("installation: %d", code)
	}
	push := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, After: commitA,
		Commits: []webhooktest.Commit{{Message: "x", Modified: []string{"apps/web/page.js"}}}}.Payload()
	if code := hook("push", "d-oa-push", push); code != 202 {
		t.Errorf("push: %d", code)
	}
}

// subscriptionsAPI is service-cloud-api's lookup endpoint as the spec
// describes it: every request dispatch sends, and every answer given, is
// checked against openapi.yaml.
type subscriptionsAPI struct {
	t      *testing.T
	v      validator.Validator
	mu     sync.Mutex
	calls  int
	answer string
}

func (s *subscriptionsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	check := r.Clone(r.Context())
	check.URL.Scheme, check.URL.Host = "http", "service-cloud-api:4000"
	check.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := s.v.ValidateHttpRequestSync(check); !ok {
		s.t.Errorf("dispatch's lookup does not conform to openapi.yaml: %s", describe(errs))
	}
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	rec.WriteString(s.answer)
	check.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := s.v.ValidateHttpResponse(check, rec.Result()); !ok {
		s.t.Errorf("the lookup answer does not conform to openapi.yaml: %s", describe(errs))
	}
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, s.answer)
}

func TestOpenAPIDescribesTheSubscriptionsEndpointDispatchCalls(t *testing.T) {
	t.Parallel()
	v := spec(t)
	stub := &subscriptionsAPI{t: t, v: v, answer: `{"builds":[{"serviceId":"svc_web","buildJobId":"cm9x2k7f30001oa",` +
		`"imageTag":"ghcr.io/acme/web:0d1a26e67d8f","rootDirectory":"apps/web","watchPaths":["apps/web/**"],` +
		`"buildCommand":"npm ci\nnpm run build","startCommand":"npm start"}]}`}
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	h := start(t, options{source: &subscriptions.HTTP{URL: srv.URL + "/internal/build-subscriptions", Secret: apiSecret, Client: &http.Client{Timeout: 4 * time.Second}}})
	push := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo, After: commitA,
		Commits: []webhooktest.Commit{{Message: "x", Modified: []string{"apps/web/page.js"}}}}.Payload()
	r := h.deliver("push", "d-oa-subs", push)
	if r.Code != http.StatusAccepted || len(h.jobs()) != 1 {
		t.Fatalf("push: %d %s; %d jobs", r.Code, r.Body, len(h.jobs()))
	}
	if stub.calls != 1 {
		t.Errorf("%d lookups, want 1", stub.calls)
	}
}
