package buildlog

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/alternatefutures/af-builder/shared/redact"
)

const secret = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"

func newLog() (*Log, *bytes.Buffer) {
	var out bytes.Buffer
	return New(&out, redact.New(secret)), &out
}

func TestLinePrefixesEveryLineOfMultiLineText(t *testing.T) {
	l, out := newLog()
	l.Line("clone", "first\nsecond\r\nthird\n")
	l.Printf("detect", "framework %s on port %d", "next", 3000)

	want := "clone: first\nclone: second\nclone: third\ndetect: framework next on port 3000\n"
	if out.String() != want {
		t.Errorf("stdout =\n%q\nwant\n%q", out.String(), want)
	}
	if tail, _ := l.Tail(); tail != want {
		t.Errorf("tail =\n%q\nwant\n%q", tail, want)
	}
}

func TestSecretsAreMaskedOnStdoutAndInTail(t *testing.T) {
	l, out := newLog()
	l.Line("clone", "token "+secret+" in use")
	l.Printf("clone", "fetching https://x-access-token:%s@github.com/o/r.git", secret)
	w := l.Writer("build")
	fmt.Fprintf(w, "echo %s\n", secret)
	w.Close()

	tail, _ := l.Tail()
	for name, got := range map[string]string{"stdout": out.String(), "tail": tail} {
		if strings.Contains(got, secret) {
			t.Errorf("%s leaks the secret:\n%s", name, got)
		}
		if n := strings.Count(got, redact.Mask); n != 3 {
			t.Errorf("%s has %d masks, want 3:\n%s", name, n, got)
		}
	}
}

func TestWriterJoinsALineSplitAcrossWrites(t *testing.T) {
	l, out := newLog()
	w := l.Writer("build")
	half := len(secret) / 2
	// A secret cut in two by the pipe's buffering must still be masked whole.
	for _, chunk := range []string{"#5 RUN echo ", secret[:half], secret[half:], " done\n#6 DONE"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if want := "build: #5 RUN echo " + redact.Mask + " done\n"; out.String() != want {
		t.Fatalf("before Close stdout = %q, want %q (the unterminated line held back)", out.String(), want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "build: #5 RUN echo " + redact.Mask + " done\nbuild: #6 DONE\n"; out.String() != want {
		t.Errorf("after Close stdout = %q, want %q", out.String(), want)
	}
}

func TestWriterDropsBlankLines(t *testing.T) {
	l, out := newLog()
	w := l.Writer("plan")
	w.Write([]byte("one\n\n   \n\t\r\ntwo\n\n"))
	w.Close()
	if want := "plan: one\nplan: two\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
}

func TestWriterCloseWithNothingBufferedWritesNothing(t *testing.T) {
	l, out := newLog()
	w := l.Writer("push")
	w.Write([]byte("layer pushed\n"))
	w.Close()
	w.Close()
	if want := "push: layer pushed\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
}

func TestWriterBoundsALineThatNeverEnds(t *testing.T) {
	l, out := newLog()
	w := l.Writer("build")
	// A progress bar redrawn with \r only: no newline, ever.
	tick := strings.Repeat("=", 1023) + "\r"
	written := 0
	for written <= 64<<10 {
		w.Write([]byte(tick))
		written += len(tick)
		if out.Len() > 0 {
			break
		}
	}
	if out.Len() == 0 {
		t.Fatalf("%d bytes without a newline are still all buffered", written)
	}
	if written <= 64<<10-len(tick) {
		t.Errorf("flushed after only %d bytes; short partial lines must wait for their end", written)
	}
	if !strings.HasPrefix(out.String(), "build: ===") || !strings.HasSuffix(out.String(), "\n") {
		t.Errorf("flushed text is not one prefixed line: %.40q...", out.String())
	}
	before := out.Len()
	w.Write([]byte("after\n"))
	w.Close()
	// The piece is cut after a \r where there is one, so at most the
	// redraw that was still going is held back.
	if got := out.String()[before:]; !strings.HasSuffix(got, "after\n") || strings.Count(got, "\n") != 1 || len(got) > len("build: ")+len(tick)+len("after\n") {
		t.Errorf("next line = %.60q... (%d bytes), want at most one redraw before \"after\" (the buffer must start over after the forced flush)", got, len(got))
	}
}

func TestTailKeepsTheEndOfALongLog(t *testing.T) {
	l, _ := newLog()
	line := strings.Repeat("x", 90)
	n := 3 * keep / len("build: 000000 "+line+"\n") // three times what the tail holds
	for i := 0; i < n; i++ {
		l.Printf("build", "%06d %s", i, line)
	}
	tail, _ := l.Tail()
	if len(tail) > keep {
		t.Errorf("tail is %d bytes, want at most %d", len(tail), keep)
	}
	if len(tail) < keep-200 {
		t.Errorf("tail is %d bytes, want close to %d", len(tail), keep)
	}
	last := fmt.Sprintf("build: %06d %s\n", n-1, line)
	if !strings.HasSuffix(tail, last) {
		t.Errorf("tail does not end with the last line %q; ends %q", last, tail[len(tail)-len(last):])
	}
	if strings.Contains(tail, "build: 000000 ") {
		t.Error("tail still holds the first line")
	}
}

func TestTailVersionChangesWithEveryLine(t *testing.T) {
	l, _ := newLog()
	_, v0 := l.Tail()
	if _, again := l.Tail(); again != v0 {
		t.Fatalf("version moved from %d to %d without a line", v0, again)
	}
	seen := map[uint64]bool{v0: true}
	w := l.Writer("build")
	steps := []func(){
		func() { l.Line("clone", "a") },
		func() { l.Printf("clone", "b %d", 1) },
		func() { l.Line("clone", "c") }, // same text as no other line; version still moves
		func() { w.Write([]byte("d\n")) },
		func() { w.Write([]byte("e")); w.Close() },
	}
	for i, step := range steps {
		step()
		_, v := l.Tail()
		if seen[v] {
			t.Errorf("step %d: version %d was seen before", i, v)
		}
		seen[v] = true
	}
	w2 := l.Writer("build")
	_, before := l.Tail()
	w2.Write([]byte("partial"))
	w2.Write([]byte("\n\n"))
	if _, after := l.Tail(); after != before+1 {
		t.Errorf("one completed line (and a dropped blank one) moved the version by %d, want 1", after-before)
	}
}

func TestConcurrentWritersKeepLinesWhole(t *testing.T) {
	l, out := newLog()
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			w := l.Writer(fmt.Sprintf("w%d", g))
			defer w.Close()
			for i := 0; i < lines; i++ {
				// Split each line over two writes so buffering is exercised too.
				fmt.Fprintf(w, "line %d of writer %d ", i, g)
				fmt.Fprintf(w, "with %s end\n", secret)
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < lines; i++ {
				l.Printf(fmt.Sprintf("p%d", g), "line %d of printer %d", i, g)
				l.Tail()
			}
		}()
	}
	wg.Wait()

	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != 2*writers*lines {
		t.Fatalf("%d lines, want %d", len(got), 2*writers*lines)
	}
	counts := map[string]int{}
	for _, ln := range got {
		phase, rest, ok := strings.Cut(ln, ": ")
		if !ok {
			t.Fatalf("line without a phase: %q", ln)
		}
		var i, g int
		switch {
		case phase[0] == 'w':
			if _, err := fmt.Sscanf(rest, "line %d of writer %d with [REDACTED] end", &i, &g); err != nil || phase != fmt.Sprintf("w%d", g) {
				t.Fatalf("torn or mixed line: %q (%v)", ln, err)
			}
		default:
			if _, err := fmt.Sscanf(rest, "line %d of printer %d", &i, &g); err != nil || phase != fmt.Sprintf("p%d", g) {
				t.Fatalf("torn or mixed line: %q (%v)", ln, err)
			}
		}
		counts[phase]++
	}
	for phase, n := range counts {
		if n != lines {
			t.Errorf("phase %s has %d lines, want %d", phase, n, lines)
		}
	}
	if _, v := l.Tail(); v != 2*writers*lines {
		t.Errorf("version = %d after %d lines", v, 2*writers*lines)
	}
}

func TestASecretAcrossTheLongLineCutIsMaskedOnStdoutAndInTail(t *testing.T) {
	for shift := -len(secret) / 2; shift <= 0; shift += 5 {
		l, out := newLog()
		w := l.Writer("build")
		// The pipe's buffering cuts the secret in two, and the first write
		// alone already passes the longest line the writer holds.
		w.Write([]byte(strings.Repeat("#", redact.MaxLine+shift) + secret[:len(secret)/2]))
		w.Write([]byte(secret[len(secret)/2:] + strings.Repeat("#", redact.MaxLine) + "\n"))
		w.Close()
		tail, _ := l.Tail()
		for name, got := range map[string]string{"stdout": out.String(), "tail": tail} {
			if strings.Contains(got, secret[:len(secret)/2]) || strings.Contains(got, secret[len(secret)/2:]) {
				t.Fatalf("shift %d: %s leaks half of the secret", shift, name)
			}
			if name == "stdout" && strings.Count(got, redact.Mask) != 1 {
				t.Fatalf("shift %d: %s has %d masks, want 1", shift, name, strings.Count(got, redact.Mask))
			}
		}
	}
}
