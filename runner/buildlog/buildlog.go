// Package buildlog is the log a user reads: plain lines with a phase prefix,
// masked for secrets, written to stdout and kept as a tail for callbacks.
package buildlog

import (
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
	l.lines(phase, l.redact.String(strings.TrimRight(text, "\n")))
}

// lines writes masked text for phase.
func (l *Log) lines(phase, text string) {
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

// Mask masks secrets in text that goes elsewhere than the log (an error
// message in a callback).
func (l *Log) Mask(text string) string {
	return l.redact.String(text)
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

// Writer returns a writer whose lines are logged under phase, for tool
// output. The redactor's writer masks the stream however it is cut and hands
// on whole lines, or pieces of a line too long to hold; Close flushes a last
// unterminated line.
func (l *Log) Writer(phase string) io.WriteCloser {
	return l.redact.Writer(phaseLines{log: l, phase: phase})
}

// phaseLines logs each line of masked output under a phase.
type phaseLines struct {
	log   *Log
	phase string
}

func (p phaseLines) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		// Tools separate blocks with blank lines; in a prefixed log they are noise.
		if strings.TrimSpace(line) != "" {
			p.log.lines(p.phase, strings.TrimSuffix(line, "\n"))
		}
	}
	return len(b), nil
}
