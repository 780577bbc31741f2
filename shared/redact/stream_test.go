package redact

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

const regPass = "reg-Pa55word+/9f8e7d6c?"

// leaks names the secret forms found in text.
func leaks(text string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if strings.Contains(text, s) {
			found = append(found, s)
		}
	}
	return found
}

// writeInChunks passes text through a Writer cut at the given sizes, cycling.
func writeInChunks(t *testing.T, r *Redactor, text string, sizes ...int) string {
	t.Helper()
	var out strings.Builder
	w := r.Writer(&out)
	for i, k := 0, 0; i < len(text); k++ {
		n := min(sizes[k%len(sizes)], len(text)-i)
		if _, err := w.Write([]byte(text[i : i+n])); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestWriterMasksASecretStraddlingTheLongLineCut(t *testing.T) {
	r := New(tok)
	// A progress bar that never ends its line, with the token placed across
	// every offset around the point where the writer must pass a piece on.
	for shift := -len(tok); shift <= len(tok); shift += 3 {
		text := strings.Repeat("#", MaxLine+shift) + tok + strings.Repeat("=", MaxLine+100)
		for _, sizes := range [][]int{{len(text)}, {4096}, {MaxLine + 1}, {1}} {
			if shift%39 != 0 && len(sizes) == 1 && sizes[0] == 1 {
				continue // byte by byte is slow; a few shifts are enough
			}
			got := writeInChunks(t, r, text, sizes...)
			if strings.Contains(got, tok[:len(tok)/2]) || strings.Contains(got, tok[len(tok)/2:]) {
				t.Fatalf("shift %d, writes of %v: a half of the token leaked", shift, sizes)
			}
			if want := r.String(text); got != want {
				t.Fatalf("shift %d, writes of %v: streamed output differs from masking the whole text", shift, sizes)
			}
		}
	}
}

func TestWriterOutputIsTheSameHoweverTheInputIsCut(t *testing.T) {
	r := NewWithLogins([]Login{{"af-push", regPass}}, tok)
	forms := []string{tok, regPass, base64.StdEncoding.EncodeToString([]byte("af-push:" + regPass)),
		base64.URLEncoding.EncodeToString([]byte(tok)), "https://x-access-token:" + tok + "@github.com/o/r"}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 25; round++ {
		var b strings.Builder
		for b.Len() < 2*MaxLine {
			switch rng.IntN(6) {
			case 0:
				b.WriteString(forms[rng.IntN(len(forms))])
			case 1:
				b.WriteByte('\n')
			case 2:
				b.WriteString(strings.Repeat("x", rng.IntN(MaxLine)))
			default:
				b.WriteString(" some output ")
			}
		}
		text := b.String()
		got := writeInChunks(t, r, text, 1+rng.IntN(100), 1+rng.IntN(70000), 1+rng.IntN(5))
		if l := leaks(got, tok, regPass, tok[:20], tok[20:]); len(l) > 0 {
			t.Fatalf("round %d: leaked %q", round, l)
		}
		if got != r.String(text) {
			t.Fatalf("round %d: streamed output differs from masking the whole text", round)
		}
	}
}

func TestBasicAuthFormOfEveryLoginIsMasked(t *testing.T) {
	r := NewWithLogins([]Login{{"af-push", regPass}, {"x-access-token", tok}})
	// What `docker login` writes to config.json, and a Basic header.
	auth := base64.StdEncoding.EncodeToString([]byte("af-push:" + regPass))
	config, _ := json.Marshal(map[string]any{"auths": map[string]any{"ghcr.io": map[string]string{"auth": auth}}})
	for _, line := range []string{
		string(config),
		"Authorization: Basic " + auth,
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+tok)),
	} {
		got := r.String(line)
		if strings.Contains(got, strings.TrimRight(auth, "=")) || !strings.Contains(got, Mask) {
			t.Errorf("%q masked as %q", line, got)
		}
	}
}

func TestBareBase64OfASecretIsMaskedInEveryAlphabetAndAlignment(t *testing.T) {
	r := New(regPass, tok)
	for _, secret := range []string{regPass, tok} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			bare := enc.EncodeToString([]byte(secret))
			if got := r.String("value " + bare + " end"); got != "value "+Mask+" end" {
				t.Errorf("bare %q masked as %q", bare, got)
			}
			// Inside a longer stream at each offset, the characters that
			// encode the secret alone must go; at most the two or three
			// shared with the neighbours stay.
			for pre := 0; pre < 3; pre++ {
				stream := enc.EncodeToString([]byte(strings.Repeat("p", pre+3) + secret + "suffix"))
				got := r.String(stream)
				if !strings.Contains(got, Mask) {
					t.Errorf("offset %d: %q not masked: %q", pre, stream, got)
				}
				if kept := len(got) - len(Mask); kept > len(stream)-len(bare)+8 {
					t.Errorf("offset %d: only %d of %d characters masked in %q", pre, len(stream)-kept, len(stream), got)
				}
			}
		}
	}
}

func TestUnrelatedBase64IsLeftAlone(t *testing.T) {
	r := NewWithLogins([]Login{{"af-push", regPass}}, tok)
	digest := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	line := "pushed " + digest + " " + base64.StdEncoding.EncodeToString([]byte("an unrelated value of some length"))
	if got := r.String(line); got != line {
		t.Errorf("masked %q to %q", line, got)
	}
}

// BuildKit's plain progress breaks a partial line when another step has news
// and prints it again whole: the broken line ends with part of the secret.
func TestWriterMasksTheBeginningOfASecretALineBreaksOff(t *testing.T) {
	r := New(tok)
	got := writeInChunks(t, r, "#5 0.409 out "+tok[:11]+"\n#6 other step\n#5 0.409 out "+tok+" more\n", 7)
	if strings.Contains(got, tok[:11]) || strings.Count(got, Mask) != 2 {
		t.Fatalf("got %q", got)
	}
	// Short endings stay: "gh" ends many a line.
	if got := writeInChunks(t, r, "see gh\n", 100); got != "see gh\n" {
		t.Fatalf("got %q", got)
	}
}
