// Package apiauth authenticates calls between service-cloud-api and dispatch
// in both directions: the API's requests to /v1 and dispatch's subscription
// lookups. Two schemes, one shared secret:
//
//   - Signed: X-AF-Timestamp: <unix seconds> and
//     X-AF-Signature: sha256=<hex HMAC-SHA256(secret, ts "\n" METHOD "\n" path "\n" body)>,
//     accepted within MaxSkew. Method and path are signed so that a captured
//     request cannot be replayed against another route or build id (a signed
//     empty-bodied DELETE would otherwise cancel any build).
//   - Bearer: Authorization: Bearer <secret>, for callers that cannot sign.
//     Simpler, but the secret itself travels on every request.
package apiauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	TimestampHeader = "X-AF-Timestamp"
	SignatureHeader = "X-AF-Signature"
	// MaxSkew bounds how old (or how far ahead) a signed request may be.
	MaxSkew = 5 * time.Minute

	sigPrefix = "sha256="
)

// Errors say why a request was refused; all of them mean 401.
var (
	ErrMissing   = errors.New("no credentials: send X-AF-Signature with X-AF-Timestamp, or a bearer token")
	ErrBadSig    = errors.New("signature does not match")
	ErrStale     = errors.New("timestamp outside the accepted window")
	ErrMalformed = errors.New("malformed X-AF-Timestamp or X-AF-Signature")
	ErrBadBearer = errors.New("bearer token does not match")
)

// Target is what a signature covers besides the body: the request path as
// routed, plus "?" and the raw query when there is one.
func Target(r *http.Request) string {
	t := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		t += "?" + r.URL.RawQuery
	}
	return t
}

// Signature returns the X-AF-Signature value for one request.
func Signature(secret []byte, ts int64, method, target string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'\n'})
	m.Write([]byte(strings.ToUpper(method)))
	m.Write([]byte{'\n'})
	m.Write([]byte(target))
	m.Write([]byte{'\n'})
	m.Write(body)
	return sigPrefix + hex.EncodeToString(m.Sum(nil))
}

// Sign sets the signature headers on r, whose body is body.
func Sign(r *http.Request, secret []byte, body []byte, now time.Time) {
	ts := now.Unix()
	r.Header.Set(TimestampHeader, strconv.FormatInt(ts, 10))
	r.Header.Set(SignatureHeader, Signature(secret, ts, r.Method, Target(r), body))
}

// Verify checks r (whose body has already been read into body) against
// secret. A signature, when present, is checked even if a bearer token is
// also sent, so a caller cannot fall back to the weaker scheme by accident.
func Verify(r *http.Request, secret []byte, body []byte, now time.Time) error {
	if len(secret) == 0 {
		// A dispatch without a configured secret must refuse, not accept all.
		return ErrMissing
	}
	if sig := r.Header.Get(SignatureHeader); sig != "" {
		ts, err := strconv.ParseInt(r.Header.Get(TimestampHeader), 10, 64)
		if err != nil || !strings.HasPrefix(sig, sigPrefix) {
			return ErrMalformed
		}
		at := time.Unix(ts, 0)
		if at.Before(now.Add(-MaxSkew)) || at.After(now.Add(MaxSkew)) {
			return ErrStale
		}
		want := Signature(secret, ts, r.Method, Target(r), body)
		if !hmac.Equal([]byte(sig), []byte(want)) {
			return ErrBadSig
		}
		return nil
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		// Comparing digests keeps the comparison constant-time whatever the
		// lengths, which hmac.Equal on the raw values would reveal.
		got, want := sha256.Sum256([]byte(strings.TrimSpace(tok))), sha256.Sum256(secret)
		if !hmac.Equal(got[:], want[:]) {
			return ErrBadBearer
		}
		return nil
	}
	return ErrMissing
}
