// Package token mints and verifies the one-time callback token that the runner
// echoes in X-AF-Build-Token and service-cloud-api checks.
//
// Format: b64url(payload) + "." + b64url(HMAC-SHA256(secret, payload)), base64url
// without padding, where payload is "<buildJobId>.<unixSeconds>".
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	// Lifetime is how long a token is accepted after it was minted.
	Lifetime = 4 * time.Hour
	// Skew tolerates clocks that run ahead of the verifier's.
	Skew = 60 * time.Second
)

// Errors a verifier can tell apart; all mean 401 to the caller.
var (
	ErrMalformed   = errors.New("token malformed")
	ErrBadSig      = errors.New("token signature mismatch")
	ErrWrongBuild  = errors.New("token is for another build")
	ErrExpired     = errors.New("token expired")
	ErrNotYetValid = errors.New("token issued in the future")
)

// Strict, so that exactly one string encodes a given token.
var enc = base64.RawURLEncoding.Strict()

// Mint returns a token for buildJobID issued at now.
func Mint(secret []byte, buildJobID string, now time.Time) string {
	payload := buildJobID + "." + strconv.FormatInt(now.Unix(), 10)
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(sign(secret, payload))
}

// Verify checks a token's signature, that it names buildJobID, and that now lies
// within its lifetime. The signature is compared in constant time before any
// field of the payload is trusted.
func Verify(secret []byte, tok, buildJobID string, now time.Time) error {
	p64, s64, ok := strings.Cut(tok, ".")
	if !ok || strings.Contains(s64, ".") {
		return ErrMalformed
	}
	payload, err := decodeCanonical(p64)
	if err != nil {
		return ErrMalformed
	}
	sig, err := decodeCanonical(s64)
	if err != nil {
		return ErrMalformed
	}
	if !hmac.Equal(sig, sign(secret, string(payload))) {
		return ErrBadSig
	}
	// The build id may itself contain dots, so the timestamp is what follows the last one.
	i := strings.LastIndexByte(string(payload), '.')
	if i < 0 {
		return ErrMalformed
	}
	id, ts := string(payload[:i]), string(payload[i+1:])
	issued, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformed
	}
	if id != buildJobID {
		return ErrWrongBuild
	}
	at := time.Unix(issued, 0)
	switch {
	case at.After(now.Add(Skew)):
		return fmt.Errorf("%w (issued %s)", ErrNotYetValid, at.UTC().Format(time.RFC3339))
	case now.After(at.Add(Lifetime).Add(Skew)):
		return fmt.Errorf("%w (issued %s)", ErrExpired, at.UTC().Format(time.RFC3339))
	}
	return nil
}

// decodeCanonical accepts exactly the encoding Mint writes: Go's decoder
// skips \r and \n anywhere, so a token with line breaks inserted would
// otherwise verify as well.
func decodeCanonical(s string) ([]byte, error) {
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if enc.EncodeToString(b) != s {
		return nil, ErrMalformed
	}
	return b, nil
}

func sign(secret []byte, payload string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}
