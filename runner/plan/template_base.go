package plan

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// baseImage is one official image line the templates build on.
type baseImage struct {
	// lang is the override key (BASE_IMAGE_<LANG>) covering this image.
	lang string
	// repo is the image's full repository name.
	repo string
	// def is the version used when the app declares none, or one that does not parse.
	def string
	// suffix follows the version in the tag (the Debian release and variant).
	suffix string
	// fixed is the whole tag for images whose version the app does not choose.
	fixed string
}

// baseImages is the one table of base images. Debian bookworm throughout, so
// build and runtime stages share a C library.
var baseImages = map[string]baseImage{
	"node":       {lang: "node", repo: "docker.io/library/node", def: "22", suffix: "-bookworm-slim"},
	"bun":        {lang: "bun", repo: "docker.io/oven/bun", def: "1", suffix: "-slim"},
	"python":     {lang: "python", repo: "docker.io/library/python", def: "3.12", suffix: "-slim-bookworm"},
	"go":         {lang: "go", repo: "docker.io/library/golang", def: "1.24", suffix: "-bookworm"},
	"rust":       {lang: "rust", repo: "docker.io/library/rust", def: "1", suffix: "-slim-bookworm"},
	"ruby-build": {lang: "ruby", repo: "docker.io/library/ruby", def: "3.3", suffix: "-bookworm"},
	"ruby":       {lang: "ruby", repo: "docker.io/library/ruby", def: "3.3", suffix: "-slim-bookworm"},
	"debian":     {lang: "debian", repo: "docker.io/library/debian", fixed: "bookworm-slim"},
	"static":     {lang: "static", repo: "docker.io/library/caddy", fixed: "2-alpine"},
}

// pinnedDigests pins tags of the table by digest: the digest a tag pointed
// at when it was recorded (a multi-platform index, so every platform
// resolves). A tag without a pin (an app declaring a version not listed) is
// pulled by tag alone, and the build log says so.
var pinnedDigests = map[string]string{
	"docker.io/library/node:20-bookworm-slim":     "sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0",
	"docker.io/library/python:3.12-slim-bookworm": "sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254",
	"docker.io/library/golang:1.24-bookworm":      "sha256:1a6d4452c65dea36aac2e2d606b01b4a029ec90cc1ae53890540ce6173ea77ac",
}

// BaseImages decides where the templates' base images come from.
type BaseImages struct {
	// Mirror is a registry prefix (BASE_IMAGE_MIRROR) every base image is
	// pulled through: docker.io/library/node:22-bookworm-slim becomes
	// <Mirror>/library/node:22-bookworm-slim. The digest pin is dropped, as a
	// mirror (or a stand-in) holds its own copies under the same tags;
	// re-pin with a per-language override carrying a digest.
	Mirror string
	// Override maps a language (node, bun, python, go, rust, ruby, debian,
	// static) to the image used for all of that language's stages, as given.
	Override map[string]string
}

// image is the reference for a table entry at version, and a note for the
// build log when the choice is worth one.
func (b BaseImages) image(key, version string) (ref, note string) {
	img, ok := baseImages[key]
	if !ok {
		panic("plan: no base image " + key)
	}
	if o := b.Override[img.lang]; o != "" {
		return o, fmt.Sprintf("base image %s from BASE_IMAGE_%s", o, strings.ToUpper(img.lang))
	}
	tag := img.fixed
	if tag == "" {
		tag = version + img.suffix
	}
	name := img.repo + ":" + tag
	if b.Mirror != "" {
		path := img.repo
		if named, err := reference.ParseNormalizedNamed(img.repo); err == nil {
			path = reference.Path(named)
		}
		return b.Mirror + "/" + path + ":" + tag, ""
	}
	if d := pinnedDigests[name]; d != "" {
		return short(name) + "@" + d, ""
	}
	return short(name), fmt.Sprintf("no pinned digest for %s: pulled by tag", short(name))
}

// short drops the docker.io/library/ a user does not write.
func short(name string) string {
	name = strings.TrimPrefix(name, "docker.io/")
	return strings.TrimPrefix(name, "library/")
}

var versionNumbers = regexp.MustCompile(`\d+(\.\d+)*`)

// pickVersion turns a declared version or constraint into the version part
// of an image tag with the given number of components ("20.x" -> "20" for
// Node, "3.12.3" -> "3.12" for Python). A lower bound (">=18", "^3.11")
// takes the default when that satisfies it. Nothing usable gives def.
func pickVersion(declared, def string, parts int) (string, bool) {
	d := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(declared), "v"))
	if d == "" {
		return def, true
	}
	m := versionNumbers.FindString(d)
	if m == "" {
		return def, false
	}
	nums := strings.Split(m, ".")
	if len(nums) > parts {
		nums = nums[:parts]
	}
	v := strings.Join(nums, ".")
	switch {
	case strings.HasPrefix(d, ">") || strings.HasPrefix(d, "~="):
		// A lower bound: the default when it satisfies it.
		if !versionLess(def, v) {
			return def, true
		}
	case strings.HasPrefix(d, "^"):
		// Same major version: the default when it is in that line.
		if strings.Split(def, ".")[0] == nums[0] && !versionLess(def, v) {
			return def, true
		}
	}
	return v, true
}

// versionLess compares dotted numbers.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
