package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/dispatchtest"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
)

// BenchmarkDispatchLoad drives one dispatch, with its default settings, on
// a real kube-apiserver with the load issue 13 measured: 400 requests, 50
// at a time, a mix of new pushes (each superseding the branch's previous
// build), GitHub redeliveries, the same delivery twice at once, and
// /v1/builds creates and repeats. It prints throughput and latency per
// kind and overall, and the API server requests spent per build. Run it
// with `make bench-dispatch`.
func BenchmarkDispatchLoad(b *testing.B) {
	const total, concurrency = 400, 50
	w := dispatchtest.Start(b)
	env := map[string]string{}
	// Ten services, each tracking its own branch: pushes spread over them
	// as over a platform's services, each superseding its branch's last.
	const branches = 10
	subs := "services:\n"
	for i := range branches {
		subs += fmt.Sprintf("  - {id: svc%d, repository: %s/%s, branch: branch-%d, installationId: %d, image: ghcr.io/acme/svc%d}\n",
			i, dispatchtest.Owner, dispatchtest.Repo, i, dispatchtest.InstallationID, i)
	}
	// DISPATCH_BENCH_ENV (space-separated KEY=VALUE) overrides settings, to
	// compare with the defaults: e.g. "K8S_QPS=20 K8S_BURST=40".
	extra := strings.Fields(os.Getenv("DISPATCH_BENCH_ENV"))
	for _, kv := range append(append(w.ProcessEnv(b, subs), "LOG_LEVEL=error"), extra...) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	// DISPATCH_BENCH_LOG names a file for dispatch's own log (with
	// DISPATCH_BENCH_ENV="LOG_LEVEL=warn", say, to see why answers failed).
	var logTo io.Writer = io.Discard
	if p := os.Getenv("DISPATCH_BENCH_LOG"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		logTo = f
	}
	d, err := newDispatch(context.Background(), envconfig.MapLookuper(env), io.Discard, logTo)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(d.http)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}, Timeout: 30 * time.Second}

	// The plan: each slot is one request (or, for "duplicate", two sent at
	// once).
	type req struct {
		kind string
		do   func() (int, error)
	}
	pushes := 0
	push := func(delivery, after string) func() (int, error) {
		pushes++
		body := webhooktest.Push{InstallationID: dispatchtest.InstallationID, Owner: dispatchtest.Owner, Repo: dispatchtest.Repo,
			Ref: fmt.Sprintf("refs/heads/branch-%d", pushes%branches), After: after, PushedAt: time.Now(),
			Commits: []webhooktest.Commit{{Message: "load", Modified: []string{"apps/web/a.ts"}}}}.Payload()
		return func() (int, error) {
			r := webhooktest.Request(srv.URL+"/webhooks/github", "push", delivery, body, []byte(dispatchtest.WebhookSecret))
			return send(client, r)
		}
	}
	create := func(id string) func() (int, error) {
		body, _ := json.Marshal(map[string]any{
			"buildJobId": id, "installationId": dispatchtest.InstallationID, "repoOwner": dispatchtest.Owner,
			"repoName": dispatchtest.Repo, "commitSha": dispatchtest.CommitA, "imageTag": "ghcr.io/acme/api:" + dispatchtest.CommitA[:12],
		})
		return func() (int, error) {
			r, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/builds", bytes.NewReader(body))
			apiauth.Sign(r, []byte(dispatchtest.APISecret), body, time.Now())
			return send(client, r)
		}
	}
	var plan []req
	var deliveries []func() (int, error)
	var apiIDs []string
	for i := 0; len(plan) < total; i++ {
		switch i % 20 {
		case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9: // a new push
			f := push(uuid(), randomSHA())
			deliveries = append(deliveries, f)
			plan = append(plan, req{"push", f})
		case 10, 11, 12: // GitHub redelivers an earlier one
			plan = append(plan, req{"redelivery", deliveries[len(deliveries)/2]})
		case 13, 14: // one delivery twice at once
			f := push(uuid(), randomSHA())
			plan = append(plan, req{"duplicate", f}, req{"duplicate", f})
		case 15, 16, 17: // the platform creates a build
			id := "cm" + randomSHA()[:20]
			apiIDs = append(apiIDs, id)
			plan = append(plan, req{"api", create(id)})
		default: // and repeats one
			if len(apiIDs) > 0 {
				plan = append(plan, req{"api repeat", create(apiIDs[len(apiIDs)-1])})
			}
		}
	}
	plan = plan[:total]

	before := apiserverRequests(b, w)
	type result struct {
		kind string
		code int
		took time.Duration
	}
	results := make([]result, len(plan))
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				code, err := plan[i].do()
				if err != nil {
					code = 0
				}
				results[i] = result{plan[i].kind, code, time.Since(t0)}
			}
		}()
	}
	for i := range plan {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	// Supersedes run after the answers; the API server requests they cost
	// count, and so does the time they take to settle.
	answered := time.Now()
	d.core.Wait()
	settled := time.Since(answered)
	calls := apiserverRequests(b, w) - before

	// Builds created: every push and API id once (duplicates and
	// repeats create nothing).
	created := 0
	for _, r := range results {
		if r.code == http.StatusAccepted && (r.kind == "push" || r.kind == "api") {
			created++
		}
	}
	dups := 0
	for _, p := range plan {
		if p.kind == "duplicate" {
			dups++
		}
	}
	created += dups / 2 // two requests, one build
	reconciled, rerr := d.core.ReconcileSupersede(context.Background())
	if rerr != nil {
		b.Error(rerr)
	}

	byKind := map[string][]time.Duration{}
	codes := map[int]int{}
	var all []time.Duration
	for _, r := range results {
		byKind[r.kind] = append(byKind[r.kind], r.took)
		all = append(all, r.took)
		codes[r.code]++
	}
	out := os.Stdout
	settings := "default settings"
	if len(extra) > 0 {
		settings = strings.Join(extra, " ")
	}
	fmt.Fprintf(out, "\ndispatch under load: %d requests, %d concurrent, %s, real kube-apiserver %s\n", total, concurrency, settings, kubetest.KubeVersion)
	fmt.Fprintf(out, "%-12s %6s %9s %9s %9s\n", "kind", "n", "p50", "p99", "max")
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range append(kinds, "all") {
		ds := byKind[k]
		if k == "all" {
			ds = all
		}
		fmt.Fprintf(out, "%-12s %6d %9s %9s %9s\n", k, len(ds), pct(ds, 50), pct(ds, 99), pct(ds, 100))
	}
	fmt.Fprintf(out, "throughput   %.0f requests/s (%s in all)\n", float64(total)/elapsed.Seconds(), elapsed.Round(time.Millisecond))
	fmt.Fprintf(out, "answers      %v\n", codes)
	fmt.Fprintf(out, "builds       %d created; %d apiserver requests, %.1f per build (supersede's lists and cancels included)\n", created, calls, float64(calls)/float64(max(created, 1)))
	fmt.Fprintf(out, "supersede    done %s after the last answer; %d older builds were left unfinished by the load, the reaper's round canceled them\n", settled.Round(time.Millisecond), reconciled)

	b.ReportMetric(float64(total)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(pctDur(all, 50).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pctDur(all, 99).Milliseconds()), "p99-ms")
	fivexx := 0
	for c, n := range codes {
		if c >= 500 || c == 0 {
			fivexx += n
		}
	}
	b.ReportMetric(float64(fivexx), "5xx")
}

func send(c *http.Client, r *http.Request) (int, error) {
	resp, err := c.Do(r)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func pctDur(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func pct(ds []time.Duration, p int) string { return pctDur(ds, p).Round(time.Millisecond).String() }

func randomSHA() string {
	b := make([]byte, 20)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	s := randomSHA()
	return s[:8] + "-" + s[8:12] + "-4" + s[13:16] + "-8" + s[17:20] + "-" + s[20:32]
}

// apiserverRequests is the API server's own count of requests served.
func apiserverRequests(b *testing.B, w *dispatchtest.World) int {
	raw, err := w.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	n := 0.0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			n += v
		}
	}
	return int(n)
}
