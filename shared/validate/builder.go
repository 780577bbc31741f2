package validate

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// The planners a build may ask for with BUILDER. Auto lets the runner choose:
// the repository's Dockerfile, else a template when one fits, else Nixpacks.
const (
	BuilderAuto       = "auto"
	BuilderDockerfile = "dockerfile"
	BuilderTemplate   = "template"
	BuilderNixpacks   = "nixpacks"
)

// Builders lists every accepted BUILDER value, the default first.
var Builders = []string{BuilderAuto, BuilderDockerfile, BuilderTemplate, BuilderNixpacks}

// Builder accepts one of Builders; empty means auto.
func Builder(s string) error {
	if s == "" {
		return nil
	}
	for _, b := range Builders {
		if s == b {
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(Builders, ", "))
}

// DefaultPlatform is what images are built for unless TARGET_PLATFORM says
// otherwise: the platform's providers run amd64, and a build on an arm64 node
// must not produce an arm64 image silently.
const DefaultPlatform = "linux/amd64"

var platformRe = regexp.MustCompile(`^linux/(amd64|arm64|arm/v6|arm/v7|386|ppc64le|s390x|riscv64)$`)

// Platform accepts the Linux platforms the official base images are published
// for, written as the engine wants them (os/arch[/variant]).
func Platform(s string) error {
	if !platformRe.MatchString(s) {
		return fmt.Errorf("must be a Linux platform such as linux/amd64 or linux/arm64")
	}
	return nil
}

// ImagePrefix accepts what BASE_IMAGE_MIRROR holds: a registry host with an
// optional path (127.0.0.1:5000/standin, mirror.example/dockerhub) or a plain
// local name prefix (af-standin), to which an image's path is appended.
func ImagePrefix(s string) error {
	if s == "" {
		return nil
	}
	if strings.HasSuffix(s, "/") || strings.ContainsAny(s, "@") {
		return fmt.Errorf("must be a registry prefix like mirror.example/dockerhub, without a trailing slash or digest")
	}
	// A prefix is valid when a name under it is.
	ref, err := reference.ParseNormalizedNamed(s + "/library/node")
	if err != nil || !reference.IsNameOnly(ref) {
		return fmt.Errorf("must be a registry prefix like mirror.example/dockerhub")
	}
	return nil
}

// ImageRef accepts a full image reference, tag or digest optional, as a
// per-language base image override holds.
func ImageRef(s string) error {
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		return fmt.Errorf("must be an image reference like node:22-bookworm-slim or registry.example/node@sha256:...")
	}
	return nil
}
