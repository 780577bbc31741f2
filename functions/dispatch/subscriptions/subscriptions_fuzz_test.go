package subscriptions_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/shared/validate"
)

var fuzzCommit = strings.Repeat("a", 40)

// service-cloud-api's answer to a lookup, over a real HTTP server. Whatever
// it says, every service Lookup returns carries the ids a build needs.
func FuzzHTTPLookupAnswer(f *testing.F) {
	f.Add([]byte(`{"builds":[{"serviceId":"s1","buildJobId":"bj-1","imageTag":"ghcr.io/a/b:c"}]}`))
	f.Add([]byte(`{"builds":[{"serviceId":"","buildJobId":"bj-1"}]}`))
	f.Add([]byte(`{"builds":null}`))
	f.Add([]byte(`{"builds":[{"watchPaths":"x"}]}`))
	var answer []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	f.Cleanup(srv.Close)
	src := &subscriptions.HTTP{URL: srv.URL, Secret: []byte("fuzz-api-secret-0123456789abcdef"), Client: srv.Client()}
	f.Fuzz(func(t *testing.T, body []byte) {
		answer = body
		svcs, err := src.Lookup(context.Background(), subscriptions.PushKey{DeliveryID: "d", InstallationID: 1,
			RepoOwner: "o", RepoName: "r", Branch: "main", CommitSHA: fuzzCommit})
		if err != nil {
			return
		}
		for _, s := range svcs {
			if s.BuildJobID == "" || s.ServiceID == "" {
				t.Fatalf("answer %q gave a service without ids: %+v", body, s)
			}
		}
	})
}

// The operator's subscriptions file. Whatever it holds, a file that loads
// yields only services that validate, for any commit.
func FuzzStaticFile(f *testing.F) {
	f.Add("services:\n- id: web\n  repository: acme/web\n  installationId: 7\n  branch: main\n  image: ghcr.io/acme/web\n  watchPaths: [\"apps/web/**\"]\n")
	f.Add("services:\n- id: web\n  repository: acme/web\n  installationId: 7\n  branch: a..b\n  image: ghcr.io/acme/web:tag\n")
	f.Add(`{"services":[{"id":"x","repository":"o/r","installationId":1,"branch":"main","image":"ghcr.io/o/r","rootDirectory":"../x"}]}`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file string) {
		p := filepath.Join(dir, "subs.yaml")
		if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := subscriptions.LoadStatic(p)
		if err != nil {
			return
		}
		for _, owner := range []string{"acme", "o"} {
			for _, repo := range []string{"web", "r"} {
				svcs, err := st.Lookup(context.Background(), subscriptions.PushKey{InstallationID: 7, RepoOwner: owner, RepoName: repo, Branch: "main", CommitSHA: fuzzCommit})
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range svcs {
					if err := s.Validate(); err != nil {
						t.Fatalf("loaded a service that does not validate: %v", err)
					}
				}
			}
		}
	})
}

// Watch paths that validate can be matched against any path without a
// crash, and "**" alone watches every changed file.
func FuzzWatchPaths(f *testing.F) {
	for _, s := range []string{"apps/api/**", "!docs/**", "[", "{a,b", "**", "docs", "/abs", "a\\b", "!"} {
		f.Add(s, "apps/api/main.go")
	}
	f.Fuzz(func(t *testing.T, pattern, changed string) {
		patterns := strings.Split(pattern, "\n")
		if validate.WatchPaths(patterns) != nil {
			return
		}
		subscriptions.Touches([]string{changed}, true, ".", patterns)
		if changed != "" {
			if ok, why := subscriptions.Touches([]string{changed}, true, ".", []string{"**"}); !ok {
				t.Fatalf(`"**" does not watch %q: %s`, changed, why)
			}
		}
	})
}
