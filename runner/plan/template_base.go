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

// pinnedDigests pins tags of the table by digest: the multi-platform index
// a tag pointed at when it was recorded, so every platform resolves. They
// were taken from public Dockerfiles that pin them, each one several
// independent repositories agree on; Docker Hub cannot be reached from the
// machine this was written on, so refresh them with `docker buildx
// imagetools inspect <tag>`. A tag without a pin (a version not listed) is
// pulled by tag alone, and the build log says so.
var pinnedDigests = map[string]string{
	"docker.io/library/node:18-bookworm-slim":     "sha256:f9ab18e354e6855ae56ef2b290dd225c1e51a564f87584b9bd21dd651838830e",
	"docker.io/library/node:20-bookworm-slim":     "sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0",
	"docker.io/library/node:22-bookworm-slim":     "sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c",
	"docker.io/library/node:24-bookworm-slim":     "sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d",
	"docker.io/oven/bun:1-slim":                   "sha256:d56a2534ffd262e92c12fd3249d3924d296d97086da773f821d7d0477435ea04",
	"docker.io/library/python:3.11-slim-bookworm": "sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b",
	"docker.io/library/python:3.12-slim-bookworm": "sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254",
	"docker.io/library/python:3.13-slim-bookworm": "sha256:01f42367a0a94ad4bc17111776fd66e3500c1d87c15bbd6055b7371d39c124fb",
	"docker.io/library/golang:1.23-bookworm":      "sha256:167053a2bb901972bf2c1611f8f52c44d5fe7e762e5cab213708d82c421614db",
	"docker.io/library/golang:1.24-bookworm":      "sha256:1a6d4452c65dea36aac2e2d606b01b4a029ec90cc1ae53890540ce6173ea77ac",
	"docker.io/library/golang:1.25-bookworm":      "sha256:3b4a11519ad929d1e1d261a12cff056f0c85b735253d7d861346b9c6f8b36437",
	"docker.io/library/rust:1-slim-bookworm":      "sha256:94e9efa4033213dbb70d4f665527e7ece3944ddb7ba1dd2e43f6fd6e2490af58",
	"docker.io/library/ruby:3.3-slim-bookworm":    "sha256:e76733e94b3a5893e4a141024ef3a583dc10781dc24becebf74f9c9f9a33e3df",
	"docker.io/library/caddy:2-alpine":            "sha256:5f5c8640aae01df9654968d946d8f1a56c497f1dd5c5cda4cf95ab7c14d58648",
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
