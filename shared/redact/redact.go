// Package redact removes secrets from text before it reaches a log line, the
// build log tail sent to the platform, or an error message.
package redact

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every secret.
const Mask = "[REDACTED]"

// minSecretLen keeps a mis-set one-character "secret" from masking every
// occurrence of that character in the logs.
const minSecretLen = 6

// userinfo matches the credentials part of any URL, known secret or not, so a
// clone URL printed by a tool never leaks the token it carries.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'"]+@`)

// Redactor masks a fixed set of secrets. The zero value masks URL userinfo only.
type Redactor struct {
	r *strings.Replacer
}

// New returns a Redactor for the given secrets, also masking the encoded forms
// in which tools print them: URL-escaped, and base64 inside Basic auth headers.
func New(secrets ...string) *Redactor {
	var forms []string
	add := func(s string) {
		if len(s) >= minSecretLen {
			forms = append(forms, s)
		}
	}
	for _, s := range secrets {
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		add(base64.StdEncoding.EncodeToString([]byte("x-access-token:" + s)))
	}
	// Longest first, so a secret that contains another is masked whole.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	var pairs []string
	seen := map[string]bool{}
	for _, f := range forms {
		if !seen[f] {
			seen[f] = true
			pairs = append(pairs, f, Mask)
		}
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// String masks secrets and URL userinfo in s.
func (r *Redactor) String(s string) string {
	if r != nil && r.r != nil {
		s = r.r.Replace(s)
	}
	// Most lines carry no URL credentials; skip the regexp for them.
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
}

// URL strips credentials from a URL for display; unparsable input is masked whole.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Mask
	}
	u.User = nil
	return u.String()
}

// Writer returns a writer that masks whole lines before passing them to w.
// Buffering by line matters: a secret split across two Write calls would
// otherwise slip through. Close flushes a final unterminated line.
func (r *Redactor) Writer(w io.Writer) io.WriteCloser {
	return &lineWriter{r: r, w: w}
}

type lineWriter struct {
	mu  sync.Mutex
	r   *Redactor
	w   io.Writer
	buf bytes.Buffer
}

// maxLine bounds buffering of output that never ends a line (a progress bar).
const maxLine = 64 << 10

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.buf.Write(p)
	for {
		i := bytes.IndexByte(lw.buf.Bytes(), '\n')
		if i < 0 {
			if lw.buf.Len() > maxLine {
				if err := lw.flush(lw.buf.Len()); err != nil {
					return len(p), err
				}
			}
			return len(p), nil
		}
		if err := lw.flush(i + 1); err != nil {
			return len(p), err
		}
	}
}

func (lw *lineWriter) flush(n int) error {
	line := string(lw.buf.Next(n))
	_, err := io.WriteString(lw.w, lw.r.String(line))
	return err
}

func (lw *lineWriter) Close() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.buf.Len() == 0 {
		return nil
	}
	return lw.flush(lw.buf.Len())
}
