package redact

import (
	"io"
	"strings"
	"testing"
)

// Every build log line goes through the redactor before stdout and the tail,
// so its cost per line bounds how fast a chatty build can log.
func BenchmarkRedactBuildLogLine(b *testing.B) {
	r := New("ghs_16C7e42F292c6912E7710c838347Ae178B4a", "registry-password-0123456789", "cb.token.value.abcdef")
	line := "build: #12 0.532 npm WARN deprecated inflight@1.0.6: This module is not supported, and leaks memory. Do not use it.\n"
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		_ = r.String(line)
	}
}

func BenchmarkRedactWriter1MiB(b *testing.B) {
	r := New("ghs_16C7e42F292c6912E7710c838347Ae178B4a", "registry-password-0123456789")
	chunk := []byte(strings.Repeat("build: #7 0.120 compiling module github.com/example/pkg/sub (cached)\n", 16))
	b.SetBytes(1 << 20)
	for b.Loop() {
		w := r.Writer(io.Discard)
		for n := 0; n < 1<<20; n += len(chunk) {
			w.Write(chunk)
		}
		w.Close()
	}
}
