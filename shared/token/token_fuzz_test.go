package token

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Verify takes a header an attacker controls. Whatever it is, a token that
// verifies must be exactly the one Mint writes for that build and time.
func FuzzVerify(f *testing.F) {
	good := Mint(secret, "job-1", t0)
	for _, s := range []string{good, good[:5] + "\n" + good[5:], "a.b", "..", "", "am9iLTE.", good + "=", "am9iLTEuMTc5NTUyMTYwMA.AAAA"} {
		f.Add(s, "job-1")
	}
	f.Fuzz(func(t *testing.T, tok, build string) {
		err := Verify(secret, tok, build, t0)
		if err != nil {
			return
		}
		p, _ := decodeCanonical(tok[:indexDot(tok)])
		id, issued := splitPayload(t, string(p))
		if id != build {
			t.Fatalf("Verify accepted %q for build %q, but it names %q", tok, build, id)
		}
		if want := Mint(secret, build, time.Unix(issued, 0)); tok != want {
			t.Fatalf("Verify accepted %q, which is not the canonical %q", tok, want)
		}
	})
}

func indexDot(s string) int {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return i
	}
	return len(s)
}

func splitPayload(t *testing.T, p string) (string, int64) {
	t.Helper()
	i := strings.LastIndexByte(p, '.')
	n, err := strconv.ParseInt(p[i+1:], 10, 64)
	if i < 0 || err != nil {
		t.Fatalf("Verify accepted a payload %q without a timestamp", p)
	}
	return p[:i], n
}
