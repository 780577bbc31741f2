package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// runtimeAPI is a stand-in for the Lambda Runtime API (2018-06-01): the
// endpoints aws-lambda-go's runtime loop calls, with the headers it reads,
// including a real Lambda-Runtime-Deadline-Ms. Invoke queues an event and
// waits for the function's answer.
type runtimeAPI struct {
	srv     *httptest.Server
	queue   chan invocation
	done    chan struct{}
	seq     int
	mu      sync.Mutex
	waiting map[string]chan result
	// InitErrors records /runtime/init/error reports.
	initErrors []string
}

type invocation struct {
	id       string
	event    []byte
	deadline time.Time
}

// result is the function's answer to one invocation.
type result struct {
	// Kind is "response" or "error".
	Kind string
	Body []byte
}

func startRuntimeAPI(t *testing.T) *runtimeAPI {
	r := &runtimeAPI{queue: make(chan invocation, 16), done: make(chan struct{}), waiting: map[string]chan result{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, req *http.Request) {
		r.finish(w, req, "response")
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, req *http.Request) {
		r.finish(w, req, "error")
	})
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.initErrors = append(r.initErrors, string(b))
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	r.srv = httptest.NewServer(mux)
	return r
}

// Addr is AWS_LAMBDA_RUNTIME_API: host:port, no scheme.
func (r *runtimeAPI) Addr() string { return r.srv.Listener.Addr().String() }

// Close releases a runtime blocked in next, then stops the server.
func (r *runtimeAPI) Close() {
	close(r.done)
	r.srv.Close()
}

func (r *runtimeAPI) next(w http.ResponseWriter, req *http.Request) {
	select {
	case inv := <-r.queue:
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:af-dispatch")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-65f0c1de-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0")
		w.WriteHeader(http.StatusOK)
		w.Write(inv.event)
	case <-r.done:
		http.Error(w, "runtime stand-in shutting down", http.StatusServiceUnavailable)
	case <-req.Context().Done():
	}
}

func (r *runtimeAPI) finish(w http.ResponseWriter, req *http.Request, kind string) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	ch, ok := r.waiting[req.PathValue("id")]
	delete(r.waiting, req.PathValue("id"))
	r.mu.Unlock()
	if !ok {
		http.Error(w, "unknown or finished invocation", http.StatusBadRequest)
		return
	}
	ch <- result{Kind: kind, Body: body}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

// Invoke queues event with a deadline timeout from now and waits for the
// function's answer.
func (r *runtimeAPI) Invoke(t *testing.T, event []byte, timeout time.Duration) result {
	t.Helper()
	r.mu.Lock()
	r.seq++
	id := fmt.Sprintf("8f507cfc-0000-4000-8000-%012d", r.seq)
	ch := make(chan result, 1)
	r.waiting[id] = ch
	r.mu.Unlock()
	r.queue <- invocation{id: id, event: event, deadline: time.Now().Add(timeout)}
	select {
	case res := <-ch:
		return res
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("invocation %s: no answer within %s", id, timeout)
		return result{}
	}
}

// InvokeHTTP sends an HTTP event and decodes the function's HTTP answer.
func (r *runtimeAPI) InvokeHTTP(t *testing.T, event any) lambdaHTTPResponse {
	t.Helper()
	raw, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	res := r.Invoke(t, raw, 30*time.Second)
	if res.Kind != "response" {
		t.Fatalf("invocation failed: %s", res.Body)
	}
	var resp lambdaHTTPResponse
	if err := json.Unmarshal(res.Body, &resp); err != nil {
		t.Fatalf("function answered %q: %v", res.Body, err)
	}
	return resp
}

// lambdaHTTPResponse is the response shape Function URLs and API Gateway
// HTTP APIs read, decoded independently of the adapter's own types.
type lambdaHTTPResponse struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
	Cookies         []string          `json:"cookies"`
}
