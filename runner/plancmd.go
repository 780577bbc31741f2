package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/runner/plan"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/validate"
)

const planUsage = "usage: runner plan [--format text|json] [--builder auto|dockerfile|template|nixpacks] [--platform linux/amd64] [--copy-link=false] [--build-cmd CMD] [--start-cmd CMD] DIR"

// planCommand is `runner plan DIR`: detection and the planner choice a build
// would make, and the Dockerfile it would build, without building. The base
// image settings come from the same BASE_IMAGE_* variables as a build's.
func planCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "text or json")
	builder := fs.String("builder", validate.BuilderAuto, "the planner to use, as BUILDER")
	platform := fs.String("platform", validate.DefaultPlatform, "the target platform, as TARGET_PLATFORM")
	buildCmd := fs.String("build-cmd", "", "BUILD_COMMAND")
	startCmd := fs.String("start-cmd", "", "START_COMMAND")
	// A build asks its daemon; a preview shows what a current one builds.
	copyLink := fs.Bool("copy-link", true, "the builder takes COPY --link (BuildKit 0.10, Docker Engine 23 and later); false for an older one")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || (*format != "text" && *format != "json") {
		fmt.Fprintln(stderr, planUsage)
		return exitUsage
	}
	for _, err := range []error{validate.Builder(*builder), validate.Platform(*platform)} {
		if err != nil {
			fmt.Fprintf(stderr, "plan: %v\n%s\n", err, planUsage)
			return exitUsage
		}
	}
	var bases struct {
		contract.BaseImages `env:", prefix=BASE_IMAGE_"`
	}
	if err := envconfig.Process(context.Background(), &bases); err != nil {
		fmt.Fprintf(stderr, "plan: %v\n", err)
		return exitUsage
	}
	dir := fs.Arg(0)
	ctx := context.Background()
	detected, err := detect.Detect(ctx, dir)
	if err != nil {
		fmt.Fprintf(stderr, "plan: %v\n", err)
		return exitBuildFailed
	}
	ps := plan.Planners{
		Template: plan.Template{Bases: plan.BaseImages{Mirror: bases.Mirror, Override: bases.Overrides()}},
		Nixpacks: plan.Nixpacks{Bin: os.Getenv("NIXPACKS_BIN")},
	}
	pv, err := ps.Preview(ctx, plan.Source{
		Dir: dir, Detected: detected, Builder: *builder, Platform: *platform,
		BuildCommand: *buildCmd, StartCommand: *startCmd, CopyLink: *copyLink,
	})
	if err != nil {
		fmt.Fprintf(stderr, "plan: %v\n", failure.From(failure.Plan, err))
		return exitBuildFailed
	}
	if *format == "json" {
		err = pv.WriteJSON(stdout)
	} else {
		err = pv.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "plan: %v\n", err)
		return exitBuildFailed
	}
	return exitOK
}
