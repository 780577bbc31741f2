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
// the target platform and where template base images come from. Dispatch
// reads them once and passes them whole into each build's Env.
type PlannerDefaults struct {
	TargetPlatform string     `env:"TARGET_PLATFORM"`
	BaseImages     BaseImages `env:", prefix=BASE_IMAGE_"`
}

// Validate checks the settings as Normalize would.
func (d PlannerDefaults) Validate() error {
	e := Env{TargetPlatform: d.TargetPlatform, BaseImages: d.BaseImages}
	var errs Errors
	e.normalizePlanner(func(v string, err error) {
		if err != nil {
			errs = append(errs, &FieldError{Var: v, Err: err})
		}
	})
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Apply sets d in e.
func (d PlannerDefaults) Apply(e *Env) {
	e.TargetPlatform, e.BaseImages = d.TargetPlatform, d.BaseImages
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

// normalizePlanner checks BUILDER, TARGET_PLATFORM and the base images.
func (e *Env) normalizePlanner(check func(string, error)) {
	if e.Builder == "" {
		e.Builder = validate.BuilderAuto
	}
	check("BUILDER", validate.Builder(e.Builder))
	if e.TargetPlatform == "" {
		e.TargetPlatform = validate.DefaultPlatform
	}
	check("TARGET_PLATFORM", validate.Platform(e.TargetPlatform))
	check("BASE_IMAGE_MIRROR", validate.ImagePrefix(e.BaseImages.Mirror))
	for _, v := range e.BaseImages.vars()[1:] {
		if v.Value != "" {
			if err := validate.ImageRef(v.Value); err != nil {
				check(v.Name, errors.New(err.Error()))
			}
		}
	}
}
