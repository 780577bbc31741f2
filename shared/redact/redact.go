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

// minEmbeddedLen is the shortest secret piece masked inside a longer base64
// stream: shorter runs of base64 characters occur by chance in ordinary output.
const minEmbeddedLen = 6

// MaxLine bounds how much of a line that never ends (a progress bar) the
// Writer holds before passing a piece of it on.
const MaxLine = 64 << 10

// userinfo matches the credentials part of any URL, known secret or not, so a
// clone URL printed by a tool never leaks the token it carries.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'"]+@`)

// Login is a user name and the secret it signs in with. Tools print the pair
// as HTTP Basic credentials: base64("user:secret") in an Authorization header
// or a Docker config.json.
type Login struct {
	User, Secret string
}

// Redactor masks a fixed set of secrets. The zero value masks URL userinfo only.
type Redactor struct {
	// forms are every printed form of every secret, longest first, so that
	// at any position the longest match wins and a secret containing
	// another is masked whole.
	forms []string
	// byFirst indexes forms by their first byte: most bytes of a log start
	// no form, and are passed over with one table lookup.
	byFirst [256][]string
	longest int
}

// New returns a Redactor for the given secrets, also masking the encoded
// forms in which tools print them (see NewWithLogins); each secret is also
// masked as the password of GitHub's "x-access-token" user.
func New(secrets ...string) *Redactor {
	return NewWithLogins(nil, secrets...)
}

// NewWithLogins masks secrets and the secret of every login, in each form a
// tool prints them: as is, URL-escaped, base64 in the standard and URL
// alphabets (with or without padding, and at each of the three alignments a
// secret can have inside a longer base64 stream), and each login as Basic
// credentials.
func NewWithLogins(logins []Login, secrets ...string) *Redactor {
	var forms []string
	add := func(s string, min int) {
		if len(s) >= min {
			forms = append(forms, s)
		}
	}
	addBase64 := func(b []byte, min int) {
		// Padded first, so that the padding goes with the rest; the
		// unpadded form is its prefix.
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			add(enc.EncodeToString(b), min)
		}
	}
	addSecret := func(s string) {
		if len(s) < minSecretLen {
			return
		}
		add(s, minSecretLen)
		add(url.QueryEscape(s), minSecretLen)
		add(url.PathEscape(s), minSecretLen)
		addBase64([]byte(s), minSecretLen)
		// Inside a longer stream (a config.json, a token in a JSON blob) the
		// secret's first bytes share base64 characters with what precedes it
		// and its last with what follows: mask the characters that encode
		// the secret alone, at each of the three offsets it can start at.
		for skip := 0; skip < 3; skip++ {
			whole := (len(s) - skip) / 3 * 3
			if whole >= minEmbeddedLen {
				addBase64([]byte(s[skip:skip+whole]), 0)
			}
		}
	}
	for _, s := range secrets {
		addSecret(s)
		if len(s) >= minSecretLen {
			addBase64([]byte("x-access-token:"+s), 0)
		}
	}
	for _, l := range logins {
		addSecret(l.Secret)
		if len(l.Secret) >= minSecretLen {
			addBase64([]byte(l.User+":"+l.Secret), 0)
		}
	}
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	r := &Redactor{}
	seen := map[string]bool{}
	for _, f := range forms {
		if seen[f] {
			continue
		}
		seen[f] = true
		r.forms = append(r.forms, f)
		r.byFirst[f[0]] = append(r.byFirst[f[0]], f)
		r.longest = max(r.longest, len(f))
	}
	return r
}

// String masks secrets and URL userinfo in s.
func (r *Redactor) String(s string) string {
	if r != nil && len(r.forms) > 0 {
		if out, _ := r.mask(nil, s, true); out != nil {
			s = string(out)
		}
	}
	return maskUserinfo(s)
}

func maskUserinfo(s string) string {
	// Most lines carry no URL credentials; skip the regexp for them.
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
}

// mask appends src to dst with every secret form replaced, scanning left to
// right and taking the longest form at each position. Unless final, it stops
// where a form could still be completed by bytes not yet seen, and returns
// how much of src it consumed: the rest must be passed again with what
// follows. With a nil dst, it returns nil when it masked nothing, so that
// String need not copy a line without secrets.
func (r *Redactor) mask(dst []byte, src string, final bool) ([]byte, int) {
	i, copied := 0, 0
scan:
	for i < len(src) {
		forms := r.byFirst[src[i]]
		if len(forms) == 0 {
			i++
			continue
		}
		rest := src[i:]
		for _, f := range forms {
			if len(f) > len(rest) {
				if !final && strings.HasPrefix(f, rest) {
					// A longer form may still match here: decide later.
					break scan
				}
				continue
			}
			if rest[:len(f)] == f {
				dst = append(dst, src[copied:i]...)
				dst = append(dst, Mask...)
				i += len(f)
				copied = i
				continue scan
			}
		}
		i++
	}
	if dst == nil && copied == 0 {
		// Nothing masked: the caller keeps its input as it is.
		return nil, i
	}
	return append(dst, src[copied:i]...), i
}

// minBroken is the shortest beginning of a secret form masked at a line end.
const minBroken = 4

// maskBrokenLines masks, in the first n bytes of text, the beginning of a
// secret form that a line ends with. A display may break a line it has
// printed in part, and print it again whole on a new line: BuildKit's plain
// progress does so when another step has news. The whole form is masked in
// the reprint; the broken line would show its first part.
func (r *Redactor) maskBrokenLines(text []byte, n int) []byte {
	var out []byte
	done := 0
	for i := 0; i < n; i++ {
		if text[i] != '\n' {
			continue
		}
		end := i
		if end > 0 && text[end-1] == '\r' {
			end--
		}
		start := bytes.LastIndexByte(text[:end], '\n') + 1
		for k := min(r.longest-1, end-start); k >= minBroken; k-- {
			p := text[end-k : end]
			hit := false
			for _, f := range r.byFirst[p[0]] {
				if len(f) > k && f[:k] == string(p) {
					hit = true
					break
				}
			}
			if hit {
				out = append(out, text[done:end-k]...)
				out = append(out, Mask...)
				done = end
				break
			}
		}
	}
	if out == nil {
		return text
	}
	out = append(out, text[done:]...)
	return out
}

// maskInto is mask for the Writer: it always appends what it consumed.
func (r *Redactor) maskInto(dst, src []byte, final bool) ([]byte, int) {
	out, n := r.mask(dst, string(src), final)
	if out == nil {
		return append(dst, src[:n]...), n
	}
	return out, n
}

// Writer returns a writer that masks what passes through it, however the
// output is cut into writes. It passes on whole lines; a line longer than
// MaxLine is passed on in pieces, each cut where no secret form can straddle
// the cut (the bytes that might begin one are held back until it is
// decided). Close flushes what is left.
func (r *Redactor) Writer(w io.Writer) io.WriteCloser {
	return &streamWriter{r: r, w: w}
}

type streamWriter struct {
	mu sync.Mutex
	r  *Redactor
	w  io.Writer
	// raw is input not yet masked: at most the beginning of a secret form.
	raw []byte
	// masked is masked output not yet passed on: the start of a line.
	masked []byte
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.raw = append(sw.raw, p...)
	old := len(sw.masked)
	var n int
	if sw.r == nil {
		sw.masked, n = append(sw.masked, sw.raw...), len(sw.raw)
	} else {
		sw.masked, n = sw.r.maskInto(sw.masked, sw.raw, false)
	}
	sw.raw = append(sw.raw[:0], sw.raw[n:]...)
	// Only the newly masked bytes can hold a line end: masked has none.
	if i := bytes.LastIndexByte(sw.masked[old:], '\n'); i >= 0 {
		if sw.r != nil {
			sw.masked = sw.r.maskBrokenLines(sw.masked, old+i+1)
			i = bytes.LastIndexByte(sw.masked, '\n') - old
		}
		if err := sw.emit(old + i + 1); err != nil {
			return len(p), err
		}
	}
	for len(sw.masked) > MaxLine {
		// Cut at a space where there is one, so that the URL userinfo
		// pattern (which never spans one) sees a URL whole.
		cut := bytes.LastIndexAny(sw.masked[:MaxLine], " \t\r")
		if cut < MaxLine/2 {
			cut = MaxLine
			// Nor through a mask: "[RED" and "ACTED]" on two lines hide
			// what was there.
			lo := cut - len(Mask) + 1
			if i := bytes.Index(sw.masked[lo:cut+len(Mask)-1], []byte(Mask)); i >= 0 && lo+i < cut {
				cut = lo + i
			}
		} else {
			cut++
		}
		if err := sw.emit(cut); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// emit passes on the first n masked bytes.
func (sw *streamWriter) emit(n int) error {
	out := maskUserinfo(string(sw.masked[:n]))
	sw.masked = append(sw.masked[:0], sw.masked[n:]...)
	_, err := io.WriteString(sw.w, out)
	return err
}

func (sw *streamWriter) Close() error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.r == nil {
		sw.masked = append(sw.masked, sw.raw...)
	} else {
		sw.masked, _ = sw.r.maskInto(sw.masked, sw.raw, true)
	}
	sw.raw = sw.raw[:0]
	if len(sw.masked) == 0 {
		return nil
	}
	return sw.emit(len(sw.masked))
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
