package redact

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

const tok = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"

func TestMasksSecretsInEveryPrintedForm(t *testing.T) {
	r := New(tok, "reg/istry+pass word")
	lines := []string{
		"token " + tok + " used",
		"escaped " + url.QueryEscape("reg/istry+pass word"),
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+tok)),
		"fatal: unable to access 'https://x-access-token:" + tok + "@github.com/o/r.git/'",
	}
	for _, l := range lines {
		got := r.String(l)
		if strings.Contains(got, tok) || strings.Contains(got, "istry") {
			t.Errorf("%q leaked: %q", l, got)
		}
		if !strings.Contains(got, Mask) {
			t.Errorf("%q: no mask in %q", l, got)
		}
	}
}

func TestMasksUserinfoOfAnyURL(t *testing.T) {
	got := New().String("cloning https://user:unknown-pass@example.com/x.git and http://a@b/c")
	if strings.Contains(got, "unknown-pass") || strings.Contains(got, "a@b") {
		t.Fatalf("userinfo kept: %q", got)
	}
	if want := "https://" + Mask + "@example.com/x.git"; !strings.Contains(got, want) {
		t.Fatalf("got %q, want it to contain %q", got, want)
	}
}

func TestShortValuesAreNotTreatedAsSecrets(t *testing.T) {
	if got := New("a").String("a banana"); got != "a banana" {
		t.Fatalf("got %q", got)
	}
}

func TestWriterMasksSecretSplitAcrossWrites(t *testing.T) {
	var out strings.Builder
	w := New(tok).Writer(&out)
	half := len(tok) / 2
	w.Write([]byte("start " + tok[:half]))
	w.Write([]byte(tok[half:] + " end\nnext line without newline " + tok))
	w.Close()
	if strings.Contains(out.String(), tok[:half]) || strings.Contains(out.String(), tok[half:]) {
		t.Fatalf("leaked: %q", out.String())
	}
	if want := "start " + Mask + " end\nnext line without newline " + Mask; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestURLDropsCredentials(t *testing.T) {
	if got := URL("https://x-access-token:" + tok + "@github.com/o/r.git"); got != "https://github.com/o/r.git" {
		t.Fatalf("got %q", got)
	}
}
