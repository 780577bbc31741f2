package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// Preview is what `runner plan DIR` shows without building: the planner that
// would run, why, what it would install, build and start, and the
// Dockerfile. Its JSON is for a platform that shows the plan before the
// first build.
type Preview struct {
	Planner        string `json:"planner"`
	Why            string `json:"why"`
	Language       string `json:"language"`
	Framework      string `json:"framework"`
	PackageManager string `json:"packageManager"`
	Install        string `json:"installCommand"`
	Build          string `json:"buildCommand"`
	Start          string `json:"startCommand"`
	Port           *int   `json:"port"`
	BaseImage      string `json:"baseImage"`
	RuntimeImage   string `json:"runtimeImage"`
	Platform       string `json:"platform"`
	// Dockerfile is the one that would be built; empty for Nixpacks, which
	// writes it during the build.
	Dockerfile string   `json:"dockerfile,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

// Preview chooses the planner for src as a build would and describes what
// it would do. It writes nothing into src.Dir.
func (ps Planners) Preview(ctx context.Context, src Source) (Preview, error) {
	c, err := ps.Choose(src)
	if err != nil {
		return Preview{}, err
	}
	d := src.Detected
	pv := Preview{
		Planner: c.Planner.Name(), Why: c.Why,
		Language: d.Language, Framework: d.Framework, PackageManager: d.PackageManager,
		Platform: nonEmpty(src.Platform, validate.DefaultPlatform),
	}
	var hints detect.Hints
	switch c.Planner.(type) {
	case Template:
		rec, err := ps.Template.Recipe(src)
		if err != nil {
			return Preview{}, err
		}
		pv.PackageManager = rec.PackageManager
		pv.Install, pv.Build, pv.Start = rec.Install, rec.Build, rec.Start
		pv.BaseImage, pv.RuntimeImage = rec.BaseImage, rec.RuntimeImage
		pv.Dockerfile, pv.Notes = rec.Dockerfile, rec.Notes
		hints = rec.hints
	case Dockerfile:
		data, err := os.ReadFile(filepath.Join(src.Dir, "Dockerfile"))
		if err != nil {
			return Preview{}, fmt.Errorf("read the Dockerfile: %w", err)
		}
		pv.Dockerfile = string(data)
		pv.BaseImage, pv.RuntimeImage = firstBase(data), finalBase(data)
		pv.Start = d.StartCommand
	case Nixpacks:
		pv.Build, pv.Start = src.BuildCommand, nonEmpty(src.StartCommand, d.StartCommand)
		if out, err := ps.Nixpacks.planJSON(ctx, src); err == nil {
			hints.NixpacksPlan = out
		} else {
			pv.Notes = append(pv.Notes, fmt.Sprintf("nixpacks plan: %v", err))
		}
		if src.StartCommand != "" {
			hints.StartCommand, hints.StartOrigin = src.StartCommand, "START_COMMAND"
		}
		pv.Notes = append(pv.Notes, "Nixpacks writes its Dockerfile during the build")
	}
	refined := detect.Refine(d, hints)
	pv.Port = refined.Port
	if pv.Start == "" {
		pv.Start = refined.StartCommand
	}
	return pv, nil
}

// firstBase and finalBase are the images the first and the last stage of a
// Dockerfile start from.
func firstBase(data []byte) string { return stageBase(data, 0) }
func finalBase(data []byte) string { return stageBase(data, -1) }

func stageBase(data []byte, i int) string {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return ""
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil || len(stages) == 0 {
		return ""
	}
	if i < 0 {
		i = len(stages) - 1
	}
	return stages[i].BaseName
}

// WriteText prints the preview for a person.
func (pv Preview) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "planner: %s\nwhy: %s\n", pv.Planner, pv.Why)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	row("language", pv.Language)
	row("framework", pv.Framework)
	row("package manager", pv.PackageManager)
	row("install", pv.Install)
	row("build", pv.Build)
	row("start", pv.Start)
	if pv.Port != nil {
		fmt.Fprintf(&b, "port: %d\n", *pv.Port)
	}
	row("base image", pv.BaseImage)
	if pv.RuntimeImage != pv.BaseImage {
		row("runtime image", pv.RuntimeImage)
	}
	row("platform", pv.Platform)
	for _, n := range pv.Notes {
		row("note", n)
	}
	if pv.Dockerfile != "" {
		b.WriteString("\n" + pv.Dockerfile)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the preview as indented JSON.
func (pv Preview) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(pv)
}
