// Package buildlog is the log a user reads: plain lines with a phase prefix,
// masked for secrets, written to stdout and kept as a tail for callbacks.
package buildlog

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/alternatefutures/af-builder/shared/redact"
)

// keep is how much log the tail holds; callbacks send at most 16,000 bytes of it.
const keep = 64 << 10

// Log is safe for concurrent use.
type Log struct {
	mu      sync.Mutex
	out     io.Writer
	redact  *redact.Redactor
	tail    []byte
	version uint64
}

// New writes lines to out (the container's stdout), masking with r.
func New(out io.Writer, r *redact.Redactor) *Log {
	return &Log{out: out, redact: r}
}

// Printf writes one line for phase.
func (l *Log) Printf(phase, format string, args ...any) {
	l.Line(phase, fmt.Sprintf(format, args...))
}

// Line writes text for phase, one prefixed line per line of text.
func (l *Log) Line(phase, text string) {
	text = l.redact.String(strings.TrimRight(text, "\n"))
	var b strings.Builder
	for _, ln := range strings.Split(text, "\n") {
		b.WriteString(phase)
		b.WriteString(": ")
		b.WriteString(strings.TrimRight(ln, "\r"))
		b.WriteByte('\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.out, b.String())
	l.tail = append(l.tail, b.String()...)
	if len(l.tail) > 2*keep {
		l.tail = append([]byte(nil), l.tail[len(l.tail)-keep:]...)
	}
	l.version++
}

// Tail returns the end of the log and a version that changes with every line,
// so a reporter can skip sending an unchanged tail.
func (l *Log) Tail() (string, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tail
	if len(t) > keep {
		t = t[len(t)-keep:]
	}
	return string(t), l.version
}

// Writer returns a writer whose lines are logged under phase, for tool output.
// Close flushes a last unterminated line.
func (l *Log) Writer(phase string) io.WriteCloser {
	return &phaseWriter{log: l, phase: phase}
}

type phaseWriter struct {
	mu    sync.Mutex
	log   *Log
	phase string
	buf   bytes.Buffer
}

func (w *phaseWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		// Tools separate blocks with blank lines; in a prefixed log they are noise.
		if line := string(w.buf.Next(i + 1)); strings.TrimSpace(line) != "" {
			w.log.Line(w.phase, line)
		}
	}
	// A progress bar that never ends a line must not grow without bound.
	if w.buf.Len() > 64<<10 {
		w.log.Line(w.phase, w.buf.String())
		w.buf.Reset()
	}
	return len(p), nil
}

func (w *phaseWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.log.Line(w.phase, w.buf.String())
		w.buf.Reset()
	}
	return nil
}
