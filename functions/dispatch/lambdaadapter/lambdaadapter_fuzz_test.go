package lambdaadapter_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/alternatefutures/af-builder/functions/dispatch/lambdaadapter"
)

// An event is whatever the Lambda runtime hands over. The adapter either
// answers 400 or passes the handler the body the event carries, and gives
// back, byte for byte, the body the handler wrote.
func FuzzInvoke(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"rawPath":"/v1/builds","body":"aGk=","isBase64Encoded":true,"requestContext":{"http":{"method":"POST"}}}`))
	f.Add([]byte(`{"rawPath":"//x?y#z","rawQueryString":"a=%zz","requestContext":{"stage":"prod","http":{"method":"GET"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev events.APIGatewayV2HTTPRequest
		if json.Unmarshal(raw, &ev) != nil {
			return
		}
		var got []byte
		called := false
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			got, _ = io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(got)
		})
		resp, err := lambdaadapter.New(h).Invoke(context.Background(), ev)
		if err != nil {
			t.Fatalf("Invoke returned an error (the runtime would retry the event): %v", err)
		}
		if !called {
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("the handler was not called, yet the answer is %d", resp.StatusCode)
			}
			return
		}
		want := []byte(ev.Body)
		if ev.IsBase64Encoded {
			want, _ = base64.StdEncoding.DecodeString(ev.Body)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("handler read %q, the event carries %q", got, want)
		}
		back, err := base64.StdEncoding.DecodeString(resp.Body)
		if !resp.IsBase64Encoded || err != nil || !bytes.Equal(back, got) {
			t.Fatalf("response body %q (base64 %v) is not what the handler wrote", resp.Body, resp.IsBase64Encoded)
		}
	})
}
