package builder

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

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
	order   []digest.Digest
	vertexs map[digest.Digest]*vertex
}

type vertex struct {
	name      string
	cached    bool
	completed bool
	err       string
}

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

// SetOutput sends the following lines to w: a push's lines belong to the
// push phase's log, though they come from the same stream.
func (p *Progress) SetOutput(w io.Writer) { p.out.set(w) }

// Send records st and queues it for display.
func (p *Progress) Send(ctx context.Context, st *bkclient.SolveStatus) error {
	p.mu.Lock()
	for _, v := range st.Vertexes {
		rec, ok := p.vertexs[v.Digest]
		if !ok {
			rec = &vertex{}
			p.vertexs[v.Digest] = rec
			p.order = append(p.order, v.Digest)
		}
		rec.name = v.Name
		rec.cached = rec.cached || v.Cached
		rec.completed = rec.completed || v.Completed != nil
		if v.Error != "" {
			rec.err = v.Error
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
		if v.cached {
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
// imported (the first build of a branch has none yet); the build goes on
// without it either way.
func (p *Progress) ReportCacheImports(out io.Writer) {
	const prefix = "importing cache manifest from "
	for _, f := range p.Failures(prefix) {
		ref := strings.TrimPrefix(f.Name, prefix)
		fmt.Fprintf(out, "cache: not used: %s: %s (building without it)\n", ref, strings.TrimPrefix(f.Err, ref+": "))
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
	s.w = w
	s.mu.Unlock()
}
