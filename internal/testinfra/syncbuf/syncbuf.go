// Package syncbuf is a bytes.Buffer safe for concurrent writers, for tests
// that capture the output of a process or of concurrent handlers.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes from any number of goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
