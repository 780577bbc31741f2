package testinfra

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// MissingBinaryError says which executable could not be found and which
// Debian package provides it.
type MissingBinaryError struct {
	Binary  string
	Package string
	Err     error
}

func (e *MissingBinaryError) Error() string {
	return fmt.Sprintf("%s not found (apt-get install -y %s): %v", e.Binary, e.Package, e.Err)
}

func (e *MissingBinaryError) Unwrap() error { return e.Err }

// LookPath finds binary (a name searched on PATH, or an absolute path) and
// names debPackage in the error when it is absent. The sbin directories are
// searched too: Debian puts dockerd and runc there, and a non-login or
// non-root PATH often lacks them.
func LookPath(binary, debPackage string) (string, error) {
	p, err := exec.LookPath(binary)
	if err == nil {
		return p, nil
	}
	if !strings.ContainsRune(binary, filepath.Separator) {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			if q, err2 := exec.LookPath(filepath.Join(dir, binary)); err2 == nil {
				return q, nil
			}
		}
	}
	return "", &MissingBinaryError{Binary: binary, Package: debPackage, Err: err}
}
