// Command nixpacksstandin is a STAND-IN for the nixpacks CLI, which cannot be
// installed on the test machines. It honours the part of the real CLI the
// runner uses, with the same arguments and outputs:
//
//	nixpacks build DIR --out OUT [--build-cmd CMD] [--start-cmd CMD] [--cache-key KEY] [--platform P] [--env K=V]...
//	    writes OUT/.nixpacks/Dockerfile and exits 0, or exits 1 with
//	    "Error: No start command could be found" like the real one
//	nixpacks plan DIR --format json [--env K=V]...
//	    prints a plan with the real plan's shape (providers, variables, phases, start)
//
// The generated Dockerfile starts FROM $NIXPACKS_STANDIN_BASE (an image the
// tests make with docker import), where the real one starts from its nix image.
// Every invocation is appended to $NIXPACKS_STANDIN_LOG when set, so tests can
// see exactly what the runner passed, environment included.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: nixpacks <build|plan> DIR [options]")
	}
	record()
	cmd, dir := os.Args[1], os.Args[2]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	out := fs.String("out", "", "")
	buildCmd := fs.String("build-cmd", "", "")
	startCmd := fs.String("start-cmd", "", "")
	cacheKey := fs.String("cache-key", "", "")
	format := fs.String("format", "", "")
	// The real CLI takes --platform for the image it builds; with --out it
	// only writes the Dockerfile, which the engine then builds for that platform.
	fs.String("platform", "", "")
	var envs envFlag
	fs.Var(&envs, "env", "")
	if err := fs.Parse(os.Args[3:]); err != nil {
		os.Exit(2)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		fail(fmt.Sprintf("Error: %s is not a directory", dir))
	}
	start := *startCmd
	if start == "" {
		// Like the real providers, a start script in the app gives the start command.
		if _, err := os.Stat(filepath.Join(dir, "start.sh")); err == nil {
			start = "sh start.sh"
		}
		// Like the real Node provider, package.json's start script.
		var pkg struct {
			Scripts map[string]string `json:"scripts"`
		}
		if b, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil && json.Unmarshal(b, &pkg) == nil && pkg.Scripts["start"] != "" {
			start = "npm run start"
		}
	}
	switch cmd {
	case "plan":
		if *format != "json" {
			fail("Error: only --format json is supported by this stand-in")
		}
		plan := map[string]any{
			"providers": []string{"standin"},
			"variables": envs.m(),
			"phases":    map[string]any{"build": map[string]any{"name": "build", "cmds": nonEmpty(*buildCmd)}},
			"start":     map[string]any{"cmd": start},
		}
		json.NewEncoder(os.Stdout).Encode(plan)
	case "build":
		if *out == "" {
			fail("Error: this stand-in only supports --out (the runner never lets nixpacks run docker)")
		}
		if start == "" {
			fail("Error: No start command could be found")
		}
		base := os.Getenv("NIXPACKS_STANDIN_BASE")
		if base == "" {
			fail("Error: NIXPACKS_STANDIN_BASE is not set")
		}
		var df strings.Builder
		fmt.Fprintf(&df, "FROM %s\nWORKDIR /app\n", base)
		// Like the real one, --env values become the image's environment.
		for _, kv := range envs {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&df, "ENV %s=%s\n", k, jsonQuote(v))
		}
		df.WriteString("COPY . /app\n")
		if *buildCmd != "" {
			id := *cacheKey
			if id == "" {
				id = "default"
			}
			fmt.Fprintf(&df, "RUN --mount=type=cache,id=%s-build,target=/root/.cache sh -c %s\n", id, shellQuote(*buildCmd))
		}
		fmt.Fprintf(&df, "CMD [\"/bin/sh\", \"-c\", %s]\n", jsonQuote(start))
		if err := os.MkdirAll(filepath.Join(*out, ".nixpacks"), 0o755); err != nil {
			fail(err.Error())
		}
		if err := os.WriteFile(filepath.Join(*out, ".nixpacks", "Dockerfile"), []byte(df.String()), 0o644); err != nil {
			fail(err.Error())
		}
		fmt.Println("╔═══ Nixpacks (stand-in) ═══╗")
		fmt.Printf("║ build │ %s\n║ start │ %s\n", *buildCmd, start)
	default:
		fail("Error: unknown subcommand " + cmd)
	}
}

// envFlag collects repeated --env K=V flags, as the real CLI accepts them.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, ",") }
func (e *envFlag) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("--env wants KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}
func (e envFlag) m() map[string]string {
	out := map[string]string{}
	for _, kv := range e {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func nonEmpty(s string) []string {
	if s == "" {
		return []string{}
	}
	return []string{s}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func record() {
	path := os.Getenv("NIXPACKS_STANDIN_LOG")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	json.NewEncoder(f).Encode(map[string]any{"args": os.Args[1:], "env": os.Environ()})
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
