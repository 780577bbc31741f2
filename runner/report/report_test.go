package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/runner/buildlog"
	"github.com/alternatefutures/af-builder/shared/callback"
	"github.com/alternatefutures/af-builder/shared/redact"
)

func startSink(t *testing.T) *callbacksink.Sink {
	t.Helper()
	s, err := callbacksink.Start(context.Background(), callbacksink.Options{Secret: []byte("report-test-secret")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The callback client keeps connections for reuse; a spare one the
		// server has not yet read a request from would hold Stop for 5s.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// newReporter reports job to the sink with a token the sink accepts.
func newReporter(sink *callbacksink.Sink, job string, interval time.Duration) (*Reporter, *buildlog.Log) {
	log := buildlog.New(io.Discard, redact.New())
	return New(callback.New(sink.URL(), sink.Token(job)), job, log, interval), log
}

// waitFor waits up to 10s for cond over job's deliveries.
func waitFor(t *testing.T, sink *callbacksink.Sink, job, what string, cond func([]callbacksink.Delivery) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := sink.WaitFor(ctx, func(all []callbacksink.Delivery) bool {
		var mine []callbacksink.Delivery
		for _, d := range all {
			if d.BuildJobID == job {
				mine = append(mine, d)
			}
		}
		return cond(mine)
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; deliveries: %s", what, err, describe(sink.Deliveries(job)))
	}
}

func describe(ds []callbacksink.Delivery) string {
	var b strings.Builder
	for _, d := range ds {
		l := logs(d)
		if len(l) > 80 {
			l = "..." + l[len(l)-77:]
		}
		fmt.Fprintf(&b, "\n  #%d %s -> %d logs(%d bytes)=%q", d.Seq, d.Status, d.Answered, len(logs(d)), l)
	}
	return b.String()
}

func logs(d callbacksink.Delivery) string {
	s, _ := d.Payload["logs"].(string)
	return s
}

func countStatus(ds []callbacksink.Delivery, status string) int {
	n := 0
	for _, d := range ds {
		if d.Status == status {
			n++
		}
	}
	return n
}

func finishOK(t *testing.T, r *Reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Finish(ctx, callback.Payload{Status: callback.Succeeded, ImageTag: "ghcr.io/af/u--o-r:abc"}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
}

func TestStartSendsRunningAtOnce(t *testing.T) {
	sink := startSink(t)
	// An interval far longer than the test: only the immediate update can arrive.
	r, log := newReporter(sink, "job-now", time.Hour)
	log.Line("start", "build job-now")
	r.Start(context.Background())
	defer finishOK(t, r)

	waitFor(t, sink, "job-now", "the first RUNNING", func(ds []callbacksink.Delivery) bool { return len(ds) > 0 })
	d := sink.Deliveries("job-now")[0]
	if d.Status != callbacksink.StatusRunning || !d.Accepted() {
		t.Fatalf("first delivery %s answered %d (%s), want an accepted RUNNING", d.Status, d.Answered, d.Reason)
	}
	if got := logs(d); got != "start: build job-now\n" {
		t.Errorf("logs = %q, want the tail so far", got)
	}
}

func TestRunningRepeatsWithTheGrowingTail(t *testing.T) {
	sink := startSink(t)
	r, log := newReporter(sink, "job-grow", 50*time.Millisecond)
	log.Line("clone", "fetching")
	r.Start(context.Background())
	defer finishOK(t, r)

	for i := 1; i <= 3; i++ {
		line := fmt.Sprintf("build: step %d", i)
		log.Line("build", fmt.Sprintf("step %d", i))
		waitFor(t, sink, "job-grow", "a RUNNING with "+line, func(ds []callbacksink.Delivery) bool {
			return len(ds) > 0 && strings.Contains(logs(ds[len(ds)-1]), line)
		})
	}
	ds := sink.Deliveries("job-grow")
	last := logs(ds[len(ds)-1])
	if want := "clone: fetching\nbuild: step 1\nbuild: step 2\nbuild: step 3\n"; last != want {
		t.Errorf("last RUNNING logs = %q, want the whole tail %q", last, want)
	}
	for i := 1; i < len(ds); i++ {
		if !strings.HasPrefix(logs(ds[i]), logs(ds[i-1])) || logs(ds[i]) == logs(ds[i-1]) {
			t.Errorf("delivery %d does not extend delivery %d's tail: %s", i, i-1, describe(ds))
		}
	}
}

func TestRunningSkipsAnUnchangedTail(t *testing.T) {
	sink := startSink(t)
	const interval = 20 * time.Millisecond
	r, log := newReporter(sink, "job-quiet", interval)
	log.Line("build", "one")
	r.Start(context.Background())
	defer finishOK(t, r)

	waitFor(t, sink, "job-quiet", "the first RUNNING", func(ds []callbacksink.Delivery) bool { return len(ds) == 1 })
	// Proving an absence takes a window: twenty ticks with nothing new to say.
	time.Sleep(20 * interval)
	if ds := sink.Deliveries("job-quiet"); len(ds) != 1 {
		t.Fatalf("an unchanged tail was sent again: %s", describe(ds))
	}
	// The ticker is still alive: a new line goes out.
	log.Line("build", "two")
	waitFor(t, sink, "job-quiet", "the RUNNING with the new line", func(ds []callbacksink.Delivery) bool { return len(ds) == 2 })
	if got := logs(sink.Deliveries("job-quiet")[1]); got != "build: one\nbuild: two\n" {
		t.Errorf("second RUNNING logs = %q", got)
	}
}

func TestFinishSendsExactlyOneTerminal(t *testing.T) {
	sink := startSink(t)
	r, log := newReporter(sink, "job-end", 50*time.Millisecond)
	log.Line("build", "compiling")
	r.Start(context.Background())
	waitFor(t, sink, "job-end", "the first RUNNING", func(ds []callbacksink.Delivery) bool { return len(ds) > 0 })
	log.Line("push", "pushed")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port := 3000
	// The caller leaves out the job id and logs: the reporter fills them in.
	if err := r.Finish(ctx, callback.Payload{Status: callback.Succeeded, ImageTag: "ghcr.io/af/u--o-r:abc", DetectedPort: &port}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	before := len(sink.Deliveries("job-end"))
	err := r.Finish(ctx, callback.Payload{Status: callback.Failed, ErrorMessage: "late"})
	if !errors.Is(err, ErrAlreadyFinished) {
		t.Errorf("second Finish = %v, want ErrAlreadyFinished", err)
	}

	ds := sink.Deliveries("job-end")
	if len(ds) != before {
		t.Errorf("the second Finish sent something: %s", describe(ds))
	}
	if n := countStatus(ds, callbacksink.StatusSucceeded) + countStatus(ds, callbacksink.StatusFailed); n != 1 {
		t.Fatalf("%d terminal deliveries, want 1: %s", n, describe(ds))
	}
	term, ok := sink.Terminal("job-end")
	if !ok || term.Seq != ds[len(ds)-1].Seq || term.Status != callbacksink.StatusSucceeded {
		t.Fatalf("terminal = %+v (found %v), want the last delivery, SUCCEEDED: %s", term.Status, ok, describe(ds))
	}
	if got := logs(term); got != "build: compiling\npush: pushed\nreport: build succeeded: ghcr.io/af/u--o-r:abc@\n" {
		t.Errorf("terminal logs = %q, want the whole tail, ending with the outcome", got)
	}
	if term.Payload["imageTag"] != "ghcr.io/af/u--o-r:abc" || term.Payload["detectedPort"] != float64(3000) {
		t.Errorf("terminal payload lost the caller's fields: %v", term.Payload)
	}
}

func TestNoRunningArrivesAfterTheTerminal(t *testing.T) {
	sink := startSink(t)
	const builds, parallel = 200, 8
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := 0; i < builds; i++ {
		job := fmt.Sprintf("job-race-%d", i)
		// A 1ms interval keeps an update in flight most of the time.
		r, log := newReporter(sink, job, time.Millisecond)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			stop := make(chan struct{})
			writerDone := make(chan struct{})
			// The build keeps logging while it finishes, as a failing one does.
			go func() {
				defer close(writerDone)
				for n := 0; n < 500; n++ {
					select {
					case <-stop:
						return
					default:
					}
					log.Printf("build", "line %d", n)
				}
			}()
			r.Start(context.Background())
			// Finish at a different moment in each build: before, during or
			// after the first RUNNING.
			for n := 0; n < i%7; n++ {
				log.Line("build", "more")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.Finish(ctx, callback.Payload{Status: callback.Failed, ErrorMessage: "boom"}); err != nil {
				t.Errorf("%s: Finish: %v", job, err)
			}
			close(stop)
			<-writerDone
		}()
	}
	wg.Wait()

	for i := 0; i < builds; i++ {
		job := fmt.Sprintf("job-race-%d", i)
		ds := sink.Deliveries(job)
		if len(ds) == 0 || ds[len(ds)-1].Status != callbacksink.StatusFailed || countStatus(ds, callbacksink.StatusFailed) != 1 {
			t.Errorf("%s: want exactly one FAILED, as the last delivery: %s", job, describe(ds))
		}
		for _, d := range ds {
			if !d.Accepted() {
				t.Errorf("%s: delivery %d refused: %d %s", job, d.Seq, d.Answered, d.Reason)
			}
		}
	}
}

func TestRejectedRunningStopsUpdatesButNotTheTerminal(t *testing.T) {
	sink := startSink(t)
	const interval = 20 * time.Millisecond
	r, log := newReporter(sink, "job-401", interval)
	sink.Script("job-401", http.StatusUnauthorized)
	log.Line("clone", "fetching")
	r.Start(context.Background())

	waitFor(t, sink, "job-401", "the refused RUNNING", func(ds []callbacksink.Delivery) bool { return len(ds) == 1 })
	// New lines that would otherwise go out within a tick or two.
	for i := 0; i < 5; i++ {
		log.Printf("build", "step %d", i)
	}
	time.Sleep(20 * interval)
	if ds := sink.Deliveries("job-401"); len(ds) != 1 {
		t.Fatalf("RUNNING updates continued after a 401: %s", describe(ds))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Finish(ctx, callback.Payload{Status: callback.Failed, ErrorMessage: "boom"}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	ds := sink.Deliveries("job-401")
	if len(ds) != 2 || ds[0].Answered != http.StatusUnauthorized || ds[1].Status != callbacksink.StatusFailed || !ds[1].Accepted() {
		t.Fatalf("want the refused RUNNING then one accepted FAILED: %s", describe(ds))
	}
	if !strings.Contains(logs(ds[1]), "build: step 4") {
		t.Errorf("terminal logs = %q, want the lines written after the refusal", logs(ds[1]))
	}
}

func TestFinishWithoutStart(t *testing.T) {
	sink := startSink(t)
	r, log := newReporter(sink, "job-config", time.Second)
	log.Line("config", "IMAGE_TAG is not a valid image reference")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Finish(ctx, callback.Payload{Status: callback.Failed, ErrorMessage: "bad config", FailedPhase: "config"}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	ds := sink.Deliveries("job-config")
	if len(ds) != 1 || ds[0].Status != callbacksink.StatusFailed || !ds[0].Final {
		t.Fatalf("want one final FAILED: %s", describe(ds))
	}
	if got := logs(ds[0]); got != "config: IMAGE_TAG is not a valid image reference\nreport: build failed in phase config (): bad config\n" {
		t.Errorf("logs = %q", got)
	}
	if !errors.Is(r.Finish(ctx, callback.Payload{Status: callback.Failed}), ErrAlreadyFinished) {
		t.Error("a second Finish without Start did not return ErrAlreadyFinished")
	}
	if n := len(sink.Deliveries("job-config")); n != 1 {
		t.Errorf("%d deliveries after the second Finish, want 1", n)
	}
}

// An API that keeps failing RUNNING updates must not hold the terminal status
// back: once Finish is called, the update in flight stops retrying. The
// interval is long, as LOG_STREAM_INTERVAL allows (up to 5m), so the update's
// own bound (interval+5s) is far beyond Finish's budget.
func TestFinishIsNotHeldBackByARetryingRunningUpdate(t *testing.T) {
	var mu sync.Mutex
	var statuses []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ Status string }
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		statuses = append(statuses, p.Status)
		mu.Unlock()
		if p.Status == string(callback.Running) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer api.Close()
	count := func(status string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range statuses {
			if s == status {
				n++
			}
		}
		return n
	}

	log := buildlog.New(io.Discard, redact.New())
	log.Line("build", "compiling")
	r := New(callback.New(api.URL, "tok"), "job-503", log, time.Minute)
	r.Start(context.Background())
	for deadline := time.Now().Add(10 * time.Second); count(string(callback.Running)) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the RUNNING update was not retried")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.Finish(ctx, callback.Payload{Status: callback.Failed, ErrorMessage: "boom"}); err != nil {
		t.Fatalf("Finish after %s: %v", time.Since(start), err)
	}
	if n := count(string(callback.Failed)); n != 1 {
		t.Errorf("%d FAILED deliveries, want 1", n)
	}
	n := count(string(callback.Running))
	time.Sleep(100 * time.Millisecond)
	if m := count(string(callback.Running)); m != n {
		t.Errorf("%d RUNNING retries after the terminal status", m-n)
	}
}
