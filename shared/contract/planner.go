package contract

import (
	"errors"

	"github.com/alternatefutures/af-builder/shared/validate"
)

// BaseImages points the runner's build templates at a mirror: an operator
// setting, the same for every build dispatch starts.
type BaseImages struct {
	// Mirror is a registry prefix every template base image is pulled
	// through (127.0.0.1:5000/standin, mirror.example/dockerhub).
	Mirror string `env:"MIRROR"`
	// One image per language, used as given for all of its stages.
	Node   string `env:"NODE"`
	Bun    string `env:"BUN"`
	Python string `env:"PYTHON"`
	Go     string `env:"GO"`
	Rust   string `env:"RUST"`
	Ruby   string `env:"RUBY"`
	Debian string `env:"DEBIAN"`
	Static string `env:"STATIC"`
}

// PlannerDefaults are the operator's settings for how every build plans:
// the target platform and where template base images come from.
type PlannerDefaults struct {
	// TargetPlatform is the platform images are built for.
	TargetPlatform string     `env:"TARGET_PLATFORM, default=linux/amd64"`
	BaseImages     BaseImages `env:", prefix=BASE_IMAGE_"`
}

// Overrides maps each language to its override, leaving out unset ones.
func (b BaseImages) Overrides() map[string]string {
	out := map[string]string{}
	for lang, v := range map[string]string{
		"node": b.Node, "bun": b.Bun, "python": b.Python, "go": b.Go,
		"rust": b.Rust, "ruby": b.Ruby, "debian": b.Debian, "static": b.Static,
	} {
		if v != "" {
			out[lang] = v
		}
	}
	return out
}

func (b BaseImages) vars() []Var {
	return []Var{
		{Name: "BASE_IMAGE_MIRROR", Value: b.Mirror},
		{Name: "BASE_IMAGE_NODE", Value: b.Node},
		{Name: "BASE_IMAGE_BUN", Value: b.Bun},
		{Name: "BASE_IMAGE_PYTHON", Value: b.Python},
		{Name: "BASE_IMAGE_GO", Value: b.Go},
		{Name: "BASE_IMAGE_RUST", Value: b.Rust},
		{Name: "BASE_IMAGE_RUBY", Value: b.Ruby},
		{Name: "BASE_IMAGE_DEBIAN", Value: b.Debian},
		{Name: "BASE_IMAGE_STATIC", Value: b.Static},
	}
}

// normalize checks TARGET_PLATFORM (empty means the default) and the base
// images.
func (d *PlannerDefaults) normalize(check func(string, error)) {
	if d.TargetPlatform == "" {
		d.TargetPlatform = validate.DefaultPlatform
	}
	check("TARGET_PLATFORM", validate.Platform(d.TargetPlatform))
	check("BASE_IMAGE_MIRROR", validate.ImagePrefix(d.BaseImages.Mirror))
	for _, v := range d.BaseImages.vars()[1:] {
		if v.Value != "" {
			if err := validate.ImageRef(v.Value); err != nil {
				check(v.Name, errors.New(err.Error()))
			}
		}
	}
}
