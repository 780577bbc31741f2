package e2e

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	gs "github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// clusterDNS is an HTTP forward proxy standing in for cluster DNS: the
// runner sends its callbacks for http://service-cloud-api:4000 through it
// (HTTP_PROXY, which Go's default transport honours), and it forwards them
// to the callback receiver on 127.0.0.1. It records the hosts it was asked
// for, so the test can tell the runner really addressed the cluster name.
type clusterDNS struct {
	*httptest.Server
	mu    sync.Mutex
	hosts []string
}

func newClusterDNS(t *testing.T, name, target string) *clusterDNS {
	t.Helper()
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterDNS{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme, r.Out.URL.Host = to.Scheme, to.Host
		r.Out.Host = to.Host
	}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hosts = append(c.hosts, r.URL.Host)
		c.mu.Unlock()
		if r.URL.Hostname() != name {
			http.Error(w, "unknown host "+r.URL.Host, http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *clusterDNS) asked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.hosts...)
}

// The runner's contract exactly as service-cloud-api sets it today: a
// plain-http callback to its in-cluster name (allowed because the operator
// listed it), a multi-line build and start command with Windows line
// breaks, base64-encoded, bare seconds for the log interval and its own
// name for the time limit. The build must succeed, run both scripts as
// scripts, and report to the in-cluster URL.
func TestServiceCloudAPIContractMultiLineCommandsAndInClusterCallback(t *testing.T) {
	repo, _ := newRepo(t, map[string]gs.File{"main.sh": gs.Text("echo app\n")})
	b := newBuild(t, repo, "main")
	dns := newClusterDNS(t, "service-cloud-api", env.sink.URL())
	b.Env["CALLBACK_URL"] = "http://service-cloud-api:4000/internal/build-callback"
	b.Env["CALLBACK_PLAIN_HTTP_HOSTS"] = "service-cloud-api,.svc.cluster.local"
	b.Env["HTTP_PROXY"] = dns.URL
	b.Env["LOG_STREAM_INTERVAL"] = "1"
	b.Env["AF_BUILD_TIMEOUT_SECONDS"] = "600"
	build := "echo \"it's built\" > /app/built.txt\r\n" +
		"printf '%s\\n' '100% done' >> /app/built.txt\r\n"
	start := "cat /app/built.txt\nsh main.sh\n"
	b.Env["BUILD_COMMAND_B64"] = base64.StdEncoding.EncodeToString([]byte(build))
	b.Env["START_COMMAND_B64"] = base64.StdEncoding.EncodeToString([]byte(start))

	res := b.run(t)

	if res.ExitCode != 0 || res.Terminal["status"] != "SUCCEEDED" || res.Terminals != 1 {
		t.Fatalf("exit %d, %d terminal callbacks, terminal %v", res.ExitCode, res.Terminals, res.Terminal)
	}
	asked := dns.asked()
	if len(asked) == 0 {
		t.Fatal("no callback went to the in-cluster name")
	}
	for _, h := range asked {
		if h != "service-cloud-api:4000" {
			t.Errorf("the runner asked the proxy for %q", h)
		}
	}
	if out := runFromRegistry(t, b.Tag); out != "it's built\n100% done\napp" {
		t.Errorf("image prints %q, want both scripts' lines", out)
	}
}

// Without the operator's list, plain http to a cluster name stays refused:
// the runner says so and exits 2 (bad configuration) without building.
func TestPlainHTTPCallbackToAnUnlistedHostIsRefused(t *testing.T) {
	repo, _ := newRepo(t, map[string]gs.File{"main.sh": gs.Text("echo app\n")})
	b := newBuild(t, repo, "main")
	dns := newClusterDNS(t, "service-cloud-api", env.sink.URL())
	b.Env["CALLBACK_URL"] = "http://service-cloud-api:4000/internal/build-callback"
	b.Env["CALLBACK_PLAIN_HTTP_HOSTS"] = "other-api,.svc.cluster.local"
	b.Env["HTTP_PROXY"] = dns.URL

	res := b.run(t)

	if res.ExitCode != 2 {
		t.Errorf("exit %d, want 2", res.ExitCode)
	}
	if got := dns.asked(); len(got) != 0 {
		t.Errorf("the runner sent callbacks over plain http to an unlisted host: %v", got)
	}
	if !strings.Contains(res.Stdout+res.Stderr, "CALLBACK_PLAIN_HTTP_HOSTS") {
		t.Errorf("the refusal does not name CALLBACK_PLAIN_HTTP_HOSTS:\n%s\n%s", res.Stdout, res.Stderr)
	}
}
