package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
)

// Steps counts the Dockerfile steps of a build (FROM excluded: a base image
// is never "built") and how many of them BuildKit took from a cache, local
// or imported from the registry.
type Steps struct {
	Total, Cached int
}

// CacheHit reports whether any step came from a cache.
func (s Steps) CacheHit() bool { return s.Cached > 0 }

func (s Steps) String() string {
	return fmt.Sprintf("%d of %d steps cached", s.Cached, s.Total)
}

// Progress renders BuildKit's status stream as the lines `docker build
// --progress=plain` prints, and remembers each vertex's outcome so the
// backends can count cached steps and report cache import/export failures.
// Send it statuses, then Close it.
type Progress struct {
	out     *switchWriter
	ch      chan *bkclient.SolveStatus
	done    chan struct{}
	mu      sync.Mutex
	last    time.Time // when the latest status was sent
	order   []digest.Digest
	vertexs map[digest.Digest]*vertex
}

type vertex struct {
	name      string
	cached    bool
	completed bool
	err       string
	// pulled: the vertex fetched layers of its own; logged: its process
	// wrote output. A step whose result BuildKit loads from a registry
	// cache when a later step needs its files is shown pulling and
	// extracting its layers, without output and often without the cached
	// flag: it was not run.
	pulled, logged bool
	// lastCached is the cached flag of the latest update, what the plain
	// display shows last (CACHED, or DONE after a pull).
	lastCached bool
}

// fromCache reports whether the step's result came from a cache.
func (v *vertex) fromCache() bool { return v.cached || (v.pulled && !v.logged && v.err == "") }

// NewProgress starts rendering to out.
func NewProgress(out io.Writer) (*Progress, error) {
	sw := &switchWriter{w: out}
	display, err := progressui.NewDisplay(sw, progressui.PlainMode)
	if err != nil {
		return nil, fmt.Errorf("progress display: %w", err)
	}
	p := &Progress{
		out:     sw,
		ch:      make(chan *bkclient.SolveStatus, 16),
		done:    make(chan struct{}),
		vertexs: map[digest.Digest]*vertex{},
	}
	go func() {
		defer close(p.done)
		// Rendering must never take the build down: a crash here would end
		// the runner without its terminal callback.
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(sw, "(progress display stopped: %v)\n", r)
				for range p.ch {
				}
			}
		}()
		// The display's own errors are about rendering, never the build.
		_, _ = display.UpdateFrom(context.Background(), p.ch)
	}()
	return p, nil
}

// Detach stops writing to the current output and holds what the display
// renders next until SetOutput: a phase's writer may be closed once the
// phase returns, while the stream (one solve for build and push) goes on.
func (p *Progress) Detach() {
	// Let the daemon's last statuses arrive (the stream runs behind the
	// build function: the last steps' lines came after it returned, and
	// landed in the push's log, once in CI) and the display take them, so
	// the build's last lines land in the build's log: wait until the
	// stream has been quiet a moment, 2 s at most.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		quiet := time.Since(p.last) > 200*time.Millisecond
		p.mu.Unlock()
		if quiet && len(p.ch) == 0 {
			break
		}
	}
	p.out.set(&held{})
}

// held is what the display rendered while detached.
type held struct{ bytes.Buffer }

// SetOutput sends what Detach held, then the following lines, to w: a
// push's lines belong to the push phase's log, though they come from the
// same stream.
func (p *Progress) SetOutput(w io.Writer) { p.out.set(w) }

// Send records st and queues it for display.
func (p *Progress) Send(ctx context.Context, st *bkclient.SolveStatus) error {
	p.mu.Lock()
	p.last = time.Now()
	for _, v := range st.Vertexes {
		rec, ok := p.vertexs[v.Digest]
		if !ok {
			rec = &vertex{}
			p.vertexs[v.Digest] = rec
			p.order = append(p.order, v.Digest)
		}
		rec.name = v.Name
		rec.cached = rec.cached || v.Cached
		rec.lastCached = v.Cached
		rec.completed = rec.completed || v.Completed != nil
		if v.Error != "" {
			rec.err = v.Error
		}
	}
	for _, s := range st.Statuses {
		if rec, ok := p.vertexs[s.Vertex]; ok && (strings.HasPrefix(s.ID, "extracting ") || strings.HasPrefix(s.ID, "sha256:")) {
			rec.pulled = true
		}
	}
	for _, l := range st.Logs {
		if rec, ok := p.vertexs[l.Vertex]; ok {
			rec.logged = true
		}
	}
	p.mu.Unlock()
	select {
	case p.ch <- st:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes the display and waits for it.
func (p *Progress) Close() {
	close(p.ch)
	<-p.done
}

// dockerfileStep matches the vertex names the Dockerfile frontend gives its
// instructions: "[2/4] RUN npm ci", "[deps 2/3] COPY package.json .".
var dockerfileStep = regexp.MustCompile(`^\[(?:[^\]]* )?\d+/\d+\] (\w+)`)

// Steps counts the Dockerfile steps seen so far.
func (p *Progress) Steps() Steps {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s Steps
	for _, d := range p.order {
		v := p.vertexs[d]
		m := dockerfileStep.FindStringSubmatch(v.name)
		if m == nil || strings.EqualFold(m[1], "FROM") {
			continue
		}
		s.Total++
		if v.fromCache() {
			s.Cached++
		}
	}
	return s
}

// Failure is a vertex that ended in an error.
type Failure struct{ Name, Err string }

// Failures returns every failed vertex whose name starts with prefix, in
// the order they appeared.
func (p *Progress) Failures(prefix string) []Failure {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Failure
	for _, d := range p.order {
		v := p.vertexs[d]
		if v.err != "" && strings.HasPrefix(v.name, prefix) {
			out = append(out, Failure{Name: v.name, Err: v.err})
		}
	}
	return out
}

// ReportCacheImports writes one line per cache reference that could not be
// imported (the first build of a branch has none yet), and one per step
// loaded from the registry cache that BuildKit's own lines show only as
// layers pulled; the build goes on without the cache either way.
func (p *Progress) ReportCacheImports(out io.Writer) {
	p.mu.Lock()
	for _, d := range p.order {
		v := p.vertexs[d]
		if m := dockerfileStep.FindStringSubmatch(v.name); m != nil && !strings.EqualFold(m[1], "FROM") && !v.lastCached && v.fromCache() {
			fmt.Fprintf(out, "cache: %s: CACHED (layers pulled from the registry cache, not run)\n", v.name)
		}
	}
	p.mu.Unlock()
	const prefix = "importing cache manifest from "
	for _, f := range p.Failures(prefix) {
		ref := strings.TrimPrefix(f.Name, prefix)
		msg := strings.TrimPrefix(f.Err, "failed to configure registry cache importer: ")
		fmt.Fprintf(out, "cache: not used: %s: %s (building without it)\n", ref, strings.TrimPrefix(msg, ref+": "))
	}
}

type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.w.(*held); ok && h.Len() > 0 {
		_, _ = h.WriteTo(w)
	}
	s.w = w
}
