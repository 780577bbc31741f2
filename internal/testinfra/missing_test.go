package testinfra

import (
	"errors"
	"strings"
	"testing"
)

func TestLookPath(t *testing.T) {
	if _, err := LookPath("sh", "dash"); err != nil {
		t.Fatal(err)
	}
	_, err := LookPath("af-no-such-binary", "af-some-package")
	var me *MissingBinaryError
	if !errors.As(err, &me) || me.Package != "af-some-package" || !strings.Contains(err.Error(), "apt-get install -y af-some-package") {
		t.Fatalf("err = %v", err)
	}
}
