package lambdaadapter_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/alternatefutures/af-builder/functions/dispatch/lambdaadapter"
)

// seen is what the handler received.
type seen struct {
	Method, Path, Query, Host, RemoteAddr string
	Header                                http.Header
	Body                                  string
	ContentLength                         int64
}

func recordingHandler(got *seen, answer func(w http.ResponseWriter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*got = seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, RemoteAddr: r.RemoteAddr,
			Header: r.Header, Body: string(b), ContentLength: r.ContentLength}
		answer(w)
	})
}

// load decodes a stored event the way aws-lambda-go's runtime loop does.
func load(t *testing.T, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestFunctionURLEventBecomesTheRequestItDescribes(t *testing.T) {
	var got seen
	a := lambdaadapter.New(recordingHandler(&got, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"accepted"}`)
	}))
	resp, err := a.Invoke(context.Background(), load(t, "function-url.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != "POST" || got.Path != "/webhooks/github" || got.Query != "trace=1&trace=2" {
		t.Errorf("request line = %s %s ? %s", got.Method, got.Path, got.Query)
	}
	if got.Body != `{"zen":"Design"}` || got.ContentLength != int64(len(got.Body)) {
		t.Errorf("body = %q (%d): the base64 body must arrive decoded", got.Body, got.ContentLength)
	}
	// Event headers are lowercase; handlers look them up in any case.
	if got.Header.Get("X-Hub-Signature-256") == "" || got.Header.Get("x-github-event") != "push" {
		t.Errorf("headers = %v", got.Header)
	}
	if got.Header.Get("Cookie") != "session=abc; theme=dark" {
		t.Errorf("cookies = %q", got.Header.Get("Cookie"))
	}
	if got.Host != "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws" || got.RemoteAddr != "140.82.115.1:0" {
		t.Errorf("host %q remote %q", got.Host, got.RemoteAddr)
	}
	if got.Header.Get("X-Request-Id") != "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" {
		t.Errorf("request id = %q", got.Header.Get("X-Request-Id"))
	}
	want := events.APIGatewayV2HTTPResponse{StatusCode: 202, Headers: map[string]string{"Content-Type": "application/json"}, Body: `{"status":"accepted"}`}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("response = %+v", resp)
	}
}

func TestAPIGatewayStageIsNotPartOfTheRoute(t *testing.T) {
	var got seen
	a := lambdaadapter.New(recordingHandler(&got, func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }))
	resp, _ := a.Invoke(context.Background(), load(t, "apigw-v2-stage.json"))
	if got.Method != "DELETE" || got.Path != "/v1/builds/bj-1" || got.Query != "callbackBaseUrl=https%3A%2F%2Fapi.example.com" {
		t.Errorf("request = %s %s ? %s", got.Method, got.Path, got.Query)
	}
	if got.Header.Get("Authorization") != "Bearer not-a-real-secret" {
		t.Errorf("authorization header lost")
	}
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status = %d", resp.StatusCode)
	}
}

func TestBinaryAnswersAreBase64AndCookiesSeparate(t *testing.T) {
	var got seen
	a := lambdaadapter.New(recordingHandler(&got, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Add("Vary", "Accept")
		w.Header().Add("Vary", "Origin")
		w.Write([]byte{0xff, 0x00, 0x01})
	}))
	ev := load(t, "function-url.json")
	resp, _ := a.Invoke(context.Background(), ev)
	if !resp.IsBase64Encoded || resp.Body != base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 0x01}) {
		t.Errorf("body = %q base64=%v", resp.Body, resp.IsBase64Encoded)
	}
	if !reflect.DeepEqual(resp.Cookies, []string{"a=1", "b=2"}) || resp.Headers["Vary"] != "Accept, Origin" {
		t.Errorf("cookies %v headers %v", resp.Cookies, resp.Headers)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("implicit status = %d", resp.StatusCode)
	}
}

func TestMalformedEventIsAnsweredNotFailed(t *testing.T) {
	called := false
	a := lambdaadapter.New(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	ev := load(t, "function-url.json")
	ev.Body = "%%% not base64"
	resp, err := a.Invoke(context.Background(), ev)
	if err != nil || resp.StatusCode != http.StatusBadRequest || called {
		t.Errorf("resp %+v err %v called %v", resp, err, called)
	}
}

// Function URLs answer over IPv6 too; RemoteAddr must stay a host:port
// that net.SplitHostPort gives the address back from.
func TestIPv6SourceIsAValidRemoteAddr(t *testing.T) {
	ev := load(t, "function-url.json")
	ev.RequestContext.HTTP.SourceIP = "2001:db8::7"
	r, err := lambdaadapter.Request(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || host != "2001:db8::7" {
		t.Errorf("RemoteAddr %q: host %q, %v", r.RemoteAddr, host, err)
	}
}
