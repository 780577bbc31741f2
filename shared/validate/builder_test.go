package validate_test

import (
	"testing"

	"github.com/alternatefutures/af-builder/shared/validate"
)

func TestBuilderPlatformAndImageSettings(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   func(string) error
		ok   []string
		bad  []string
	}{
		{"Builder", validate.Builder, []string{"", "auto", "dockerfile", "template", "nixpacks"}, []string{"Auto", "buildpacks", "template "}},
		{"Platform", validate.Platform, []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}, []string{"", "amd64", "windows/amd64", "linux/arm64/v8/x", "linux/AMD64"}},
		{"ImagePrefix", validate.ImagePrefix, []string{"", "127.0.0.1:5000/standin", "mirror.example/dockerhub", "af-standin", "localhost:5000"},
			[]string{"mirror.example/", "Mirror.example/X", "mirror.example/hub:tag", "mirror.example/hub@sha256:abc", "a b"}},
		{"ImageRef", validate.ImageRef, []string{"node:22-bookworm-slim", "af-standin/node:18", "127.0.0.1:5000/x/node@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			[]string{"", "Node:22", "node:", "node@sha256:xyz"}},
	} {
		for _, v := range c.ok {
			if err := c.fn(v); err != nil {
				t.Errorf("%s(%q) = %v, want accepted", c.name, v, err)
			}
		}
		for _, v := range c.bad {
			if c.fn(v) == nil {
				t.Errorf("%s(%q) accepted", c.name, v)
			}
		}
	}
}
