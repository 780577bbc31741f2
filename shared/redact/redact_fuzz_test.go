package redact

import (
	"strings"
	"testing"
)

// Build output is whatever a user's build prints. However it is cut into
// writes, the Writer gives what String gives for the whole, and no secret
// survives either.
func FuzzWriterMatchesString(f *testing.F) {
	f.Add("token "+tok+" end\n", uint16(7))
	f.Add(strings.Repeat("x", 100)+tok[:9]+"\n"+tok, uint16(1))
	f.Add("https://u:p@h/x\r"+tok+tok, uint16(3))
	r := NewWithLogins([]Login{{"af-push", regPass}}, tok)
	f.Fuzz(func(t *testing.T, text string, cut uint16) {
		size := int(cut%64) + 1
		var out strings.Builder
		w := r.Writer(&out)
		for i := 0; i < len(text); i += size {
			w.Write([]byte(text[i:min(i+size, len(text))]))
		}
		w.Close()
		whole := r.String(text)
		if strings.Contains(whole, tok) || strings.Contains(whole, regPass) {
			t.Fatalf("String(%q) = %q keeps a secret", text, whole)
		}
		if strings.Contains(out.String(), tok) || strings.Contains(out.String(), regPass) {
			t.Fatalf("Writer keeps a secret: %q", out.String())
		}
		if !strings.Contains(text, "\n") && out.String() != whole {
			t.Fatalf("writes of %d: %q, String: %q", size, out.String(), whole)
		}
	})
}
