package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/shared/callback"
	"github.com/alternatefutures/af-builder/shared/token"
)

func newBuildToken(secret, id string) string {
	return token.Mint([]byte(secret), id, time.Now())
}

// secretValues are every secret of the suite, by name.
func secretValues() map[string]string {
	return map[string]string{
		"git installation token": gitToken,
		"registry password":      registryPass,
		"callback HMAC secret":   callbackSecret,
	}
}

// assertNoSecrets scans everything a runner printed and every callback body
// it sent. The callback token may appear only in its own header.
func assertNoSecrets(t *testing.T, res result) {
	t.Helper()
	assertNoSecretsIn(t, "runner stdout", res.Stdout)
	assertNoSecretsIn(t, "runner stderr", res.Stderr)
	for _, d := range res.Deliveries {
		assertNoSecretsIn(t, "callback body", string(d.Body))
		tok := d.Header.Get(callback.TokenHeader)
		for _, where := range []string{res.Stdout, res.Stderr, string(d.Body)} {
			if tok != "" && strings.Contains(where, tok) {
				t.Errorf("the callback token appears outside its header")
			}
		}
	}
}

func assertNoSecretsIn(t *testing.T, what, text string) {
	t.Helper()
	for name, v := range secretValues() {
		if strings.Contains(text, v) {
			t.Errorf("%s contains the %s", what, name)
		}
	}
}

// scanForSecrets is the suite-wide check: every body the sink received, from
// every build, successful or not.
func scanForSecrets() error {
	for _, d := range env.sink.Received() {
		for name, v := range secretValues() {
			if strings.Contains(string(d.Body), v) {
				return fmt.Errorf("callback %d (%s %s) contains the %s", d.Seq, d.BuildJobID, d.Status, name)
			}
		}
	}
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
