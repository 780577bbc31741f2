// Package baseimage makes local STAND-INS of the official base images the
// build templates use (node, python, golang, debian), because no image can be
// pulled on the machines the tests run on. Each is built from Debian's own
// package archive with debootstrap (Debian bookworm, the release the official
// images are built on) or from the host's Go tree, the host's CA bundle is
// installed inside (this machine reaches npm and the Go module proxy through
// a TLS-intercepting proxy), and the result is imported with `docker import`
// under an honest name: standin/library/node:18-bookworm-slim stands in for
// docker.io/library/node:18-bookworm-slim. That is the name the templates ask
// for when BASE_IMAGE_MIRROR is "standin" (see runner/plan).
//
// Building a root filesystem takes minutes (debootstrap, then apt-get in a
// chroot), so each is built once per recipe and kept as a tar under
// ~/.cache/af-builder/baseimages/<recipe-hash>/; importing it into an engine
// takes seconds. Concurrent test binaries share the cache under a file lock.
// Needs root and the Debian packages debootstrap, tar and util-linux
// (unshare, chroot).
package baseimage

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Image is one stand-in: how its root filesystem is made and how it is
// configured on import.
type Image struct {
	// Official is the image this stands in for, fully qualified:
	// docker.io/library/node:18-bookworm-slim.
	Official string
	// Packages are Debian packages installed with apt-get in a chroot on
	// top of the minbase root filesystem (not with debootstrap's --include,
	// whose resolver fails on npm's dependencies).
	Packages []string
	// Setup is a shell script run in the chroot after the packages, e.g. to
	// add the users the official image has.
	Setup string
	// GoRoot, when set, is a Go tree copied to /usr/local/go, where the
	// official golang images keep theirs.
	GoRoot string
	// Changes are Dockerfile instructions applied on import (ENV, CMD,
	// WORKDIR), mirroring the official image's config.
	Changes []string
}

// DefaultMirror is the registry prefix the stand-ins carry locally:
// BASE_IMAGE_MIRROR=standin makes the templates ask for exactly these names.
const DefaultMirror = "standin"

// Ref is the image's name under a mirror prefix, the way the templates
// rewrite an official name: docker.io/library/node:18-bookworm-slim under
// "standin" is standin/library/node:18-bookworm-slim, and under
// "127.0.0.1:5000/mirror" is 127.0.0.1:5000/mirror/library/node:18-bookworm-slim.
func (img Image) Ref(mirror string) string {
	return strings.TrimSuffix(mirror, "/") + "/" + strings.TrimPrefix(img.Official, "docker.io/")
}

// Name is the image's local stand-in name, Ref(DefaultMirror).
func (img Image) Name() string { return img.Ref(DefaultMirror) }

// Tag is the tag part of the official name (18-bookworm-slim).
func (img Image) Tag() string { return img.Official[strings.LastIndexByte(img.Official, ':')+1:] }

const debianPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Debian stands in for debian:bookworm-slim: the minbase system and the CA
// bundle. The templates' runtime stage for commands that need a shell.
func Debian() Image {
	return Image{
		Official: "docker.io/library/debian:bookworm-slim",
		Changes:  []string{"ENV " + debianPath, `CMD ["bash"]`},
	}
}

// Node stands in for node:18-bookworm-slim with Debian's nodejs (18.x) and
// npm (9.x): Node 18 is what bookworm ships, and it is new enough for
// Next.js 15. Like the official image it has a `node` user with uid 1000.
func Node() Image {
	return Image{
		Official: "docker.io/library/node:18-bookworm-slim",
		Packages: []string{"nodejs", "npm"},
		Setup:    "groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node",
		Changes: []string{
			"ENV " + debianPath,
			// The official image's node trusts its bundled roots only; this
			// one is Debian's, built against the system store, and the extra
			// variable makes every Node process (npm, next, the app) trust the
			// intercepting proxy's CA bundled at the same path.
			"ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
			`CMD ["node"]`,
		},
	}
}

// Python stands in for python:3.11-slim-bookworm with Debian's python3
// (3.11), venv, pip, and — since PyPI is unreachable here — Debian's Flask,
// gunicorn, FastAPI and uvicorn in the system site-packages. A virtualenv made
// with --system-site-packages sees them, so `pip install -r requirements.txt`
// naming them is satisfied without an index. (The official image's system
// site-packages are empty, so that venv flag changes nothing there.)
func Python() Image {
	return Image{
		Official: "docker.io/library/python:3.11-slim-bookworm",
		Packages: []string{
			"python3", "python3-venv", "python3-pip", "python-is-python3",
			"python3-flask", "gunicorn", "python3-fastapi", "python3-uvicorn",
		},
		Changes: []string{
			"ENV " + debianPath,
			// pip would ask PyPI, unreachable here, for its own latest version.
			"ENV PIP_DISABLE_PIP_VERSION_CHECK=1",
			`CMD ["python3"]`,
		},
	}
}

// Go stands in for golang:<major.minor>-bookworm with the Go tree at goroot
// (the host's toolchain, e.g. /usr/local/go) on the minbase system, with the
// official image's GOPATH, PATH and GOTOOLCHAIN.
func Go(goroot string) (Image, error) {
	v, err := goVersion(goroot)
	if err != nil {
		return Image{}, err
	}
	minor := regexp.MustCompile(`^go(\d+\.\d+)`).FindStringSubmatch(v)
	if minor == nil {
		return Image{}, fmt.Errorf("go stand-in: unexpected version %q in %s", v, goroot)
	}
	return Image{
		Official: "docker.io/library/golang:" + minor[1] + "-bookworm",
		GoRoot:   goroot,
		Setup:    "mkdir -p /go/src /go/bin && chmod -R 1777 /go",
		Changes: []string{
			"ENV GOLANG_VERSION=" + strings.TrimPrefix(v, "go"),
			"ENV GOTOOLCHAIN=local",
			"ENV GOPATH=/go",
			"ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"WORKDIR /go",
			`CMD ["bash"]`,
		},
	}, nil
}

// HostGoRoot is the Go tree of the `go` on PATH.
func HostGoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// goVersion reads the first line of GOROOT/VERSION (go1.26.8).
func goVersion(goroot string) (string, error) {
	b, err := os.ReadFile(goroot + "/VERSION")
	if err != nil {
		return "", fmt.Errorf("go stand-in: %w", err)
	}
	return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]), nil
}
