package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

const apps = "detect/testdata/apps/"

func runPlan(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := planCommand(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPlanJSONDescribesTheTemplateBuild(t *testing.T) {
	t.Setenv("BASE_IMAGE_MIRROR", "127.0.0.1:5000/standin")
	code, out, errOut := runPlan(t, "--format", "json", apps+"django")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Planner, Why, Language, Framework, PackageManager string
		InstallCommand, BuildCommand, StartCommand        string
		Port                                              *int
		BaseImage, RuntimeImage, Platform, Dockerfile     string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Planner != "template" || got.Why == "" || got.Language != "python" || got.Framework != "django" ||
		got.PackageManager != "pip" || got.InstallCommand != "pip install -r requirements.txt" ||
		got.StartCommand != "gunicorn mysite.wsgi" || got.Port == nil || *got.Port != 8080 ||
		got.BaseImage != "127.0.0.1:5000/standin/library/python:3.12-slim-bookworm" || got.Platform != "linux/amd64" {
		t.Errorf("plan = %+v", got)
	}
	res, err := parser.Parse(strings.NewReader(got.Dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil || len(stages) != 2 || stages[0].BaseName != got.BaseImage {
		t.Errorf("the Dockerfile has %d stages from %v (%v), want two from %s", len(stages), stages, err, got.BaseImage)
	}
}

func TestPlanTextNamesThePlannerAndWhy(t *testing.T) {
	code, out, errOut := runPlan(t, apps+"dockerfile-and-package-json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "planner: dockerfile\nwhy: the repository has a Dockerfile\n") {
		t.Errorf("output starts %q", out[:min(len(out), 120)])
	}
	code, out, _ = runPlan(t, "--builder", "nixpacks", apps+"express")
	if code != exitOK || !strings.HasPrefix(out, "planner: nixpacks\nwhy: BUILDER=nixpacks\n") {
		t.Errorf("--builder nixpacks: exit %d, %q", code, out)
	}
}

func TestPlanRefusesWhatABuildWouldRefuse(t *testing.T) {
	code, _, errOut := runPlan(t, "--builder", "template", apps+"php")
	if code != exitBuildFailed || !strings.Contains(errOut, "no template for php") {
		t.Errorf("template for PHP: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{
		{},
		{"--format", "yaml", apps + "express"},
		{"--builder", "buildpacks", apps + "express"},
		{"--platform", "darwin/arm64", apps + "express"},
	} {
		if code, _, _ := runPlan(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}
