package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alternatefutures/af-builder/runner/builder"
)

// stream records an engine's JSON message stream for a BuildKit build, the
// way POST /build answers it.
type stream struct {
	t   *testing.T
	buf bytes.Buffer
	now time.Time
}

func newStream(t *testing.T) *stream {
	return &stream{t: t, now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (s *stream) message(m map[string]any) {
	s.t.Helper()
	if err := json.NewEncoder(&s.buf).Encode(m); err != nil {
		s.t.Fatal(err)
	}
}

// trace adds one moby.buildkit.trace message: a JSON string of base64
// protobuf bytes.
func (s *stream) trace(st *controlapi.StatusResponse) {
	s.t.Helper()
	raw, err := proto.Marshal(st)
	if err != nil {
		s.t.Fatal(err)
	}
	s.message(map[string]any{"id": "moby.buildkit.trace", "aux": base64.StdEncoding.EncodeToString(raw)})
}

func (s *stream) tick() *timestamppb.Timestamp {
	s.now = s.now.Add(150 * time.Millisecond)
	return timestamppb.New(s.now)
}

const (
	vDockerfile = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	vFrom       = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	vRun        = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

// steps writes a three-step build up to the RUN step's end; runErr makes
// that step fail.
func (s *stream) steps(runErr string) {
	load := &controlapi.Vertex{Digest: vDockerfile, Name: "[internal] load build definition from Dockerfile", Started: s.tick()}
	s.trace(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{load}})
	load = &controlapi.Vertex{Digest: vDockerfile, Name: load.Name, Started: load.Started, Completed: s.tick()}
	s.trace(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{load}})

	from := &controlapi.Vertex{Digest: vFrom, Inputs: nil, Name: "[1/2] FROM docker.io/library/base:latest", Cached: true, Started: s.tick()}
	from.Completed = from.Started
	s.trace(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{from}})

	run := &controlapi.Vertex{Digest: vRun, Inputs: []string{vFrom}, Name: "[2/2] RUN ./build.sh", Started: s.tick()}
	s.trace(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{run}})
	s.trace(&controlapi.StatusResponse{Logs: []*controlapi.VertexLog{
		{Vertex: vRun, Timestamp: s.tick(), Stream: 1, Msg: []byte("compiling 42 files\n")},
		{Vertex: vRun, Timestamp: s.tick(), Stream: 2, Msg: []byte("warning: unused variable\n")},
	}})
	done := &controlapi.Vertex{Digest: vRun, Inputs: run.Inputs, Name: run.Name, Started: run.Started, Completed: s.tick(), Error: runErr}
	s.trace(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{done}})
}

func TestBuildStreamRendersPlainProgressAndReturnsTheImageID(t *testing.T) {
	s := newStream(t)
	s.steps("")
	// Plain text the engine also sends; it repeats the trace, out of order.
	s.message(map[string]any{"stream": "Successfully tagged ghcr.io/af/u--o-r:abc\n"})
	s.message(map[string]any{"id": "moby.image.id", "aux": map[string]string{"ID": "sha256:feedfacecafe"}})

	var out bytes.Buffer
	id, err := render(t, &s.buf, &out)
	if err != nil {
		t.Fatalf("buildStream: %v\noutput:\n%s", err, out.String())
	}
	if id != "sha256:feedfacecafe" {
		t.Errorf("image id = %q, want sha256:feedfacecafe", id)
	}
	got := out.String()
	// In order: each step's header, its output with times relative to its
	// start, and how it ended.
	at := 0
	for _, want := range []string{
		"#1 [internal] load build definition from Dockerfile\n",
		"#1 DONE 0.1s\n",
		"#2 [1/2] FROM docker.io/library/base:latest\n",
		"#2 CACHED\n",
		"#3 [2/2] RUN ./build.sh\n",
		"#3 0.150 compiling 42 files\n",
		"#3 0.300 warning: unused variable\n",
		"#3 DONE 0.5s\n",
	} {
		i := strings.Index(got[at:], want)
		if i < 0 {
			t.Fatalf("output lacks %q after byte %d:\n%s", want, at, got)
		}
		at += i + len(want)
	}
	if strings.Contains(got, "Successfully tagged") {
		t.Errorf("the engine's plain text was printed too:\n%s", got)
	}
	if strings.ContainsAny(got, "\x1b\r") {
		t.Errorf("output has terminal control characters; want plain lines:\n%q", got)
	}
}

func TestBuildStreamErrorDetailIsAStreamError(t *testing.T) {
	const msg = `process "/bin/sh -c ./build.sh" did not complete successfully: exit code: 3`
	s := newStream(t)
	s.steps(msg)
	s.message(map[string]any{"errorDetail": map[string]any{"message": msg}, "error": msg})
	// Nothing after the error counts.
	s.message(map[string]any{"id": "moby.image.id", "aux": map[string]string{"ID": "sha256:notthisone"}})

	var out bytes.Buffer
	id, err := render(t, &s.buf, &out)
	var se *StreamError
	if !errors.As(err, &se) || se.Message != msg {
		t.Fatalf("err = %v (%T), want *StreamError %q", err, err, msg)
	}
	if id != "" {
		t.Errorf("image id = %q after a failed build", id)
	}
	if got := out.String(); !strings.Contains(got, "#3 ERROR: "+msg) {
		t.Errorf("output does not show the failing step:\n%s", got)
	}
}

func TestBuildStreamRejectsACorruptTrace(t *testing.T) {
	for name, aux := range map[string]any{
		"not a string": map[string]int{"x": 1},
		"not base64":   "%%%",
		"not protobuf": base64.StdEncoding.EncodeToString([]byte{0xff, 0xff, 0xff}),
	} {
		t.Run(name, func(t *testing.T) {
			s := newStream(t)
			s.message(map[string]any{"id": "moby.buildkit.trace", "aux": aux})
			_, err := render(t, &s.buf, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), "decode build trace") {
				t.Errorf("err = %v, want a decode error", err)
			}
		})
	}
}

func TestBuildStreamCutShort(t *testing.T) {
	s := newStream(t)
	s.steps("")
	s.buf.WriteString(`{"id":"moby.buildkit.tr`) // the connection dropped mid-message
	_, err := render(t, &s.buf, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "read build stream") {
		t.Errorf("err = %v, want a read error", err)
	}
}

func TestBuildFailedClassifiesStreamErrors(t *testing.T) {
	e := &Engine{}
	err := e.buildFailed(context.Background(), "af-1", &StreamError{Message: `failed to solve: dockerfile parse error on line 3: unknown instruction: RUNN`})
	if c := classOf(t, err); c != "user" {
		t.Errorf("a Dockerfile parse error is %s, want user", c)
	}
	err = e.buildFailed(context.Background(), "af-1", errors.New("Post \"http://localhost:2375/v1.41/build\": EOF"))
	if c := classOf(t, err); c != "infrastructure" {
		t.Errorf("a broken engine request is %s, want infrastructure", c)
	}
}

// render runs buildStream with a display writing to out, flushed on return.
func render(t *testing.T, body io.Reader, out io.Writer) (string, error) {
	t.Helper()
	p, err := builder.NewProgress(out)
	if err != nil {
		t.Fatal(err)
	}
	id, err := buildStream(context.Background(), body, p)
	p.Close()
	return id, err
}
