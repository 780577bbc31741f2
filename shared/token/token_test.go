package token

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	secret = []byte("s3cr3t-hmac-key")
	t0     = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
)

func TestMintedTokenVerifiesForItsBuild(t *testing.T) {
	tok := Mint(secret, "job-123", t0)
	if err := Verify(secret, tok, "job-123", t0.Add(time.Minute)); err != nil {
		t.Fatalf("fresh token rejected: %v", err)
	}
}

func TestTokenHasTheDocumentedShape(t *testing.T) {
	tok := Mint(secret, "job-1", t0)
	p, _, _ := strings.Cut(tok, ".")
	got, err := enc.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "job-1.1795521600"; string(got) != want {
		t.Fatalf("payload = %q, want %q", got, want)
	}
	if strings.ContainsAny(tok, "=+/") {
		t.Fatalf("token %q is not unpadded base64url", tok)
	}
}

func TestVerifyRejects(t *testing.T) {
	good := Mint(secret, "job-123", t0)
	cases := []struct {
		name  string
		tok   string
		build string
		now   time.Time
		want  error
	}{
		{"another secret", Mint([]byte("other"), "job-123", t0), "job-123", t0, ErrBadSig},
		{"another build", Mint(secret, "job-999", t0), "job-123", t0, ErrWrongBuild},
		{"tampered payload", enc.EncodeToString([]byte("job-124.1795521600")) + good[strings.IndexByte(good, '.'):], "job-124", t0, ErrBadSig},
		{"expired", good, "job-123", t0.Add(Lifetime + Skew + time.Second), ErrExpired},
		{"from the future", good, "job-123", t0.Add(-Skew - time.Second), ErrNotYetValid},
		{"no dot", "abc", "job-123", t0, ErrMalformed},
		{"two dots", good + ".x", "job-123", t0, ErrMalformed},
		{"not base64", "!!.??", "job-123", t0, ErrMalformed},
		{"empty", "", "job-123", t0, ErrMalformed},
		// Go's decoder skips line breaks: the token must be the exact
		// string Mint wrote, not one of many that decode alike.
		{"line break in the payload", good[:4] + "\n" + good[4:], "job-123", t0, ErrMalformed},
		{"carriage return in the signature", good[:len(good)-3] + "\r" + good[len(good)-3:], "job-123", t0, ErrMalformed},
		{"CRLF at the end", good + "\r\n", "job-123", t0, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Verify(secret, c.tok, c.build, c.now); !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyAcceptsWithinLifetimeAndSkew(t *testing.T) {
	tok := Mint(secret, "a.b.c", t0)
	for _, now := range []time.Time{t0.Add(-Skew), t0.Add(Lifetime), t0.Add(Lifetime + Skew)} {
		if err := Verify(secret, tok, "a.b.c", now); err != nil {
			t.Fatalf("at %s: %v", now, err)
		}
	}
}
