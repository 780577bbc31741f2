// Command benchbuild is `make bench-build`: it builds each real test app
// cold (a fresh engine, empty store) and warm (the same engine, one source
// file changed) through the real runner and prints the table of times and
// image sizes (see internal/bench/buildbench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/alternatefutures/af-builder/internal/bench/buildbench"
	"github.com/alternatefutures/af-builder/internal/testinfra/realapps"
)

func main() {
	apps := flag.String("apps", "", "comma-separated apps to build (default all: "+names(realapps.All)+")")
	md := flag.String("markdown", "", "also write the table as Markdown to this file")
	runner := flag.String("runner", "", "runner binary (default: built from this checkout)")
	quiet := flag.Bool("q", false, "print only the table")
	logs := flag.String("logs", "", "keep every runner's log in this directory")
	newBuilder := flag.Bool("new-builder", true, "also measure each backend on a new builder (the registry cache columns)")
	flag.Parse()

	o := buildbench.Options{RunnerBin: *runner, Log: os.Stderr, LogDir: *logs}
	if *newBuilder {
		o.Extra = buildbench.NewBuilderMeasures()
	}
	if *quiet {
		o.Log = nil
	}
	if *apps != "" {
		for _, n := range strings.Split(*apps, ",") {
			i := slices.IndexFunc(realapps.All, func(a realapps.App) bool { return a.Name == strings.TrimSpace(n) })
			if i < 0 {
				fmt.Fprintf(os.Stderr, "bench-build: no app %q (have %s)\n", n, names(realapps.All))
				os.Exit(2)
			}
			o.Apps = append(o.Apps, realapps.All[i])
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tb, err := buildbench.Run(ctx, o)
	if tb != nil {
		fmt.Println()
		tb.Text(os.Stdout)
		if *md != "" {
			f, ferr := os.Create(*md)
			if ferr == nil {
				tb.Markdown(f)
				ferr = f.Close()
			}
			if ferr != nil {
				fmt.Fprintf(os.Stderr, "bench-build: %v\n", ferr)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-build: %v\n", err)
		os.Exit(1)
	}
}

func names(apps []realapps.App) string {
	var n []string
	for _, a := range apps {
		n = append(n, a.Name)
	}
	return strings.Join(n, ",")
}
