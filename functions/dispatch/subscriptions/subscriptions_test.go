package subscriptions_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
)

const sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"

func key(owner, repo, branch string) subscriptions.PushKey {
	return subscriptions.PushKey{DeliveryID: "d-1", InstallationID: 7, RepoOwner: owner, RepoName: repo, Branch: branch, CommitSHA: sha}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const staticYAML = `
services:
  - id: web
    repository: Acme/Shop
    branch: main
    installationId: 7
    image: ghcr.io/acme/u1--acme-shop-web
    rootDirectory: apps/web
    watchPaths: ["apps/web/**", "packages/**"]
    buildCommand: npm run build
  - id: api
    repository: acme/shop
    branch: main
    installationId: 7
    image: ghcr.io/acme/u1--acme-shop-api
    startCommand: ./server
    builder: template
  - id: other-installation
    repository: acme/shop
    branch: main
    installationId: 8
    image: ghcr.io/acme/elsewhere
  - id: staging
    repository: acme/shop
    branch: staging
    installationId: 7
    image: ghcr.io/acme/u1--acme-shop-staging
`

func TestStaticFileAnswersTheServicesTrackingABranch(t *testing.T) {
	src, err := subscriptions.LoadStatic(writeFile(t, "subs.yaml", staticYAML))
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Lookup(context.Background(), key("acme", "shop", "main"))
	if err != nil {
		t.Fatal(err)
	}
	want := []subscriptions.Service{
		{ServiceID: "web", ImageTag: "ghcr.io/acme/u1--acme-shop-web:0d1a26e67d8f", RootDirectory: "apps/web",
			WatchPaths: []string{"apps/web/**", "packages/**"}, BuildCommand: "npm run build"},
		{ServiceID: "api", ImageTag: "ghcr.io/acme/u1--acme-shop-api:0d1a26e67d8f", StartCommand: "./server", Builder: "template"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Lookup =\n%+v\nwant\n%+v", got, want)
	}
	none, err := src.Lookup(context.Background(), key("acme", "shop", "feature/x"))
	if err != nil || len(none) != 0 {
		t.Errorf("untracked branch: %v, %v", none, err)
	}
}

func TestStaticFileMayBeJSON(t *testing.T) {
	p := writeFile(t, "subs.json", `{"services":[{"id":"web","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/acme/web"}]}`)
	src, err := subscriptions.LoadStatic(p)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := src.Lookup(context.Background(), key("acme", "shop", "main"))
	if len(got) != 1 || got[0].ImageTag != "ghcr.io/acme/web:0d1a26e67d8f" {
		t.Errorf("Lookup = %+v", got)
	}
}

func TestStaticFileMistakesAreReportedAtLoad(t *testing.T) {
	// Every entry is valid but for the mistake its name describes.
	for name, entry := range map[string]string{
		"unknown field":    `{"id":"a","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/a/b","imagee":"x"}`,
		"repo without /":   `{"id":"a","repository":"shop","branch":"main","installationId":7,"image":"ghcr.io/a/b"}`,
		"bad branch":       `{"id":"a","repository":"acme/shop","branch":"-x","installationId":7,"image":"ghcr.io/a/b"}`,
		"image with tag":   `{"id":"a","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/a/b:latest"}`,
		"uppercase image":  `{"id":"a","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/A/b"}`,
		"escaping root":    `{"id":"a","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/a/b","rootDirectory":"../x"}`,
		"bad watch glob":   `{"id":"a","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/a/b","watchPaths":["src/[x"]}`,
		"only negations":   `{"id":"a","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/a/b","watchPaths":["!docs/**"]}`,
		"two-line command": `{"id":"a","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/a/b","buildCommand":"a\nb"}`,
		"string install":   `{"id":"a","repository":"acme/shop","branch":"main","installationId":"seven","image":"ghcr.io/a/b"}`,
		"unknown builder":  `{"id":"a","repository":"acme/shop","branch":"main","installationId":7,"image":"ghcr.io/a/b","builder":"buildpacks"}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, "subs.json", `{"services":[`+entry+`]}`)
			if _, err := subscriptions.LoadStatic(p); err == nil {
				t.Error("loaded")
			}
		})
	}
}

// A public App can be installed by anyone, on an account holding a
// repository of the same name as a tracked one: only the installation id
// tells the two apart, so an entry without one is refused.
func TestStaticFileEntriesMustNameTheirInstallation(t *testing.T) {
	for name, installation := range map[string]string{"missing": "", "zero": "installationId: 0", "negative": "installationId: -7"} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, "subs.yaml", `
services:
  - id: ok
    repository: acme/shop
    branch: main
    installationId: 7
    image: ghcr.io/acme/ok
  - id: web
    repository: acme/shop
    branch: main
    `+installation+`
    image: ghcr.io/acme/web
`)
			_, err := subscriptions.LoadStatic(p)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, want := range []string{"services[1]", "installationId is required", `"web"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "services[0]") {
				t.Errorf("error %q blames the valid entry", err)
			}
		})
	}
	_, err := subscriptions.NewStatic([]subscriptions.StaticService{{ID: "web", Repository: "acme/shop", Branch: "main", Image: "ghcr.io/acme/web"}})
	if err == nil || !strings.Contains(err.Error(), "installationId is required") {
		t.Errorf("NewStatic without an installation: err = %v", err)
	}
}

func TestStaticLookupIgnoresOtherInstallationsOfTheSameRepository(t *testing.T) {
	src, err := subscriptions.NewStatic([]subscriptions.StaticService{
		{ID: "web", Repository: "acme/shop", Branch: "main", InstallationID: 7, Image: "ghcr.io/acme/web"},
	})
	if err != nil {
		t.Fatal(err)
	}
	k := key("acme", "shop", "main")
	k.InstallationID = 666 // the attacker's installation, on their own acme/shop
	if got, err := src.Lookup(context.Background(), k); err != nil || len(got) != 0 {
		t.Errorf("Lookup from another installation = %+v, %v", got, err)
	}
	if got, err := src.Lookup(context.Background(), key("acme", "shop", "main")); err != nil || len(got) != 1 {
		t.Errorf("Lookup from the entry's installation = %+v, %v", got, err)
	}
}

var secret = []byte("api-auth-secret-0123456789abcdef0123")

// fakeAPI is service-cloud-api's lookup endpoint: it checks the signature
// as the real one must, and answers from answer.
func fakeAPI(t *testing.T, answer func(k subscriptions.PushKey, calls int32) (int, any)) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/internal/build-subscriptions" {
			http.Error(w, "wrong route", http.StatusNotFound)
			return
		}
		if err := apiauth.Verify(r, secret, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var k subscriptions.PushKey
		if err := json.Unmarshal(body, &k); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		code, v := answer(k, n)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestHTTPLookupSendsTheSignedPushAndReturnsTheAPIsBuilds(t *testing.T) {
	var seen subscriptions.PushKey
	srv, _ := fakeAPI(t, func(k subscriptions.PushKey, _ int32) (int, any) {
		seen = k
		return 200, map[string]any{"builds": []map[string]any{{
			"serviceId": "svc_1", "buildJobId": "bj_" + k.DeliveryID, "imageTag": "ghcr.io/acme/web:0d1a26e67d8f",
			"rootDirectory": "apps/web", "watchPaths": []string{"apps/web/**"}, "buildCommand": "make",
		}}}
	})
	src := &subscriptions.HTTP{URL: srv.URL + "/internal/build-subscriptions", Secret: secret}
	got, err := src.Lookup(context.Background(), key("acme", "shop", "main"))
	if err != nil {
		t.Fatal(err)
	}
	if seen != key("acme", "shop", "main") {
		t.Errorf("API saw %+v", seen)
	}
	if len(got) != 1 || got[0].BuildJobID != "bj_d-1" || got[0].ServiceID != "svc_1" || got[0].WatchPaths[0] != "apps/web/**" || got[0].BuildCommand != "make" {
		t.Errorf("Lookup = %+v", got)
	}
}

func TestHTTPLookupRetriesOnceOnAServerError(t *testing.T) {
	srv, calls := fakeAPI(t, func(_ subscriptions.PushKey, n int32) (int, any) {
		if n == 1 {
			return 503, map[string]string{"error": "deploying"}
		}
		return 200, map[string]any{"builds": []any{}}
	})
	src := &subscriptions.HTTP{URL: srv.URL + "/internal/build-subscriptions", Secret: secret}
	got, err := src.Lookup(context.Background(), key("acme", "shop", "main"))
	if err != nil || len(got) != 0 || calls.Load() != 2 {
		t.Errorf("Lookup = %v, %v after %d calls", got, err, calls.Load())
	}
}

func TestHTTPLookupDoesNotRetryARefusal(t *testing.T) {
	srv, calls := fakeAPI(t, nil)
	src := &subscriptions.HTTP{URL: srv.URL + "/internal/build-subscriptions", Secret: []byte("wrong-secret-wrong-secret-wrong-secret")}
	_, err := src.Lookup(context.Background(), key("acme", "shop", "main"))
	if err == nil || !strings.Contains(err.Error(), "401") || calls.Load() != 1 {
		t.Errorf("err = %v after %d calls", err, calls.Load())
	}
}

func TestHTTPLookupRefusesAnAnswerWithoutBuildIDs(t *testing.T) {
	srv, _ := fakeAPI(t, func(subscriptions.PushKey, int32) (int, any) {
		return 200, map[string]any{"builds": []map[string]any{{"serviceId": "svc_1", "imageTag": "ghcr.io/a/b:c"}}}
	})
	src := &subscriptions.HTTP{URL: srv.URL + "/internal/build-subscriptions", Secret: secret}
	if _, err := src.Lookup(context.Background(), key("acme", "shop", "main")); err == nil || !strings.Contains(err.Error(), "buildJobId") {
		t.Errorf("err = %v", err)
	}
}
