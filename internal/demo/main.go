// Command demo shows the whole system on one machine: a GitHub push webhook
// goes into dispatch (local executor, static subscriptions), the runner
// clones, detects, plans, builds with BuildKit and pushes, the platform API
// (a callback receiver that verifies tokens) hears every step, and the image
// pulled back from the registry answers an HTTP request. Then one file of the
// sample app changes and the second, warm build is timed against the first.
//
// Everything runs on 127.0.0.1: a Docker engine (reused when one answers,
// otherwise Debian's dockerd, started here), a registry with htpasswd auth,
// a git smart-HTTP server, a stand-in for GitHub's App token API (which checks
// the App JWT), and the callback receiver. The sample app starts FROM a base
// image made here with `docker import`, so no internet is needed.
package main

import (
	"context"
	"embed"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp/githubtest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
	"github.com/alternatefutures/af-builder/internal/testinfra/registry"
)

//go:embed sampleapp
var sampleApp embed.FS

const (
	baseImage      = "af-demo/busybox:1"
	appID          = 1001
	installationID = 42
	owner, repo    = "demo", "hello-site"
	serviceID      = "svc-hello-site"
)

func main() {
	bin := flag.String("bin", "bin", "directory with the runner and dispatch binaries (make build)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{bin: *bin}
	err := d.run(ctx)
	d.cleanup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		os.Exit(1)
	}
}

type demo struct {
	bin      string
	tmp      string
	closers  []func()
	engine   string
	reg      *registry.Registry
	git      *gitserver.Server
	repo     *gitserver.Repo
	sink     *callbacksink.Sink
	dispatch string // base URL
	webhook  []byte // webhook secret

	ghURL          string
	callbackSecret string
}

func (d *demo) defer_(f func()) { d.closers = append(d.closers, f) }

func (d *demo) cleanup() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> %s\n", fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context) error {
	var err error
	if d.tmp, err = os.MkdirTemp("", "af-demo-"); err != nil {
		return err
	}
	d.defer_(func() { os.RemoveAll(d.tmp) })
	for _, b := range []string{"runner", "dispatch"} {
		if _, err := os.Stat(filepath.Join(d.bin, b)); err != nil {
			return fmt.Errorf("%s binary missing in %s: run `make build` first", b, d.bin)
		}
	}

	if err := d.startEngine(ctx); err != nil {
		return err
	}
	if err := d.startServices(ctx); err != nil {
		return err
	}
	if err := d.startDispatch(ctx); err != nil {
		return err
	}

	step("push 1: sending a signed GitHub push webhook for %s/%s", owner, repo)
	first, err := d.pushAndWait(ctx, nil)
	if err != nil {
		return err
	}
	if err := d.runImage(ctx, first, "version 1"); err != nil {
		return err
	}

	step("push 2: changing one file (index.html.tmpl) and pushing again")
	second, err := d.pushAndWait(ctx, map[string]gitserver.File{
		"index.html.tmpl": gitserver.Text("<!doctype html>\n<title>af-builder demo</title>\n<h1>Hello again from af-builder, version {{VERSION}}</h1>\n"),
		"VERSION":         gitserver.Text("2\n"),
	})
	if err != nil {
		return err
	}
	if err := d.runImage(ctx, second, "version 2"); err != nil {
		return err
	}

	step("summary")
	fmt.Printf("%-10s %12s %12s\n", "phase", "cold (1st)", "warm (2nd)")
	for _, p := range []string{"engine", "clone", "detect", "plan", "build", "push"} {
		fmt.Printf("%-10s %12s %12s\n", p, ms(first.timings[p]), ms(second.timings[p]))
	}
	fmt.Printf("%-10s %12s %12s\n", "total", first.total.Round(time.Millisecond), second.total.Round(time.Millisecond))
	fmt.Printf("\nimage:  %s\ndigest: %s\nframework %q, port %v, callbacks verified by the platform API stand-in: %d\n",
		second.image, second.digest, second.framework, second.port, len(d.sink.Received()))
	fmt.Print(`
To build a real repository instead: run dispatch with EXECUTOR=local (or on
Kubernetes), your GitHub App's GITHUB_APP_ID / GITHUB_APP_PRIVATE_KEY_FILE /
GITHUB_WEBHOOK_SECRET, REGISTRY_USER / REGISTRY_TOKEN for your registry, and a
SUBSCRIPTIONS_FILE naming the repository, branch, installationId and image; point the App's
webhook at /webhooks/github. See README.md and functions/dispatch/README.md.
`)
	return nil
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }

// startEngine reuses a Docker engine that answers (DOCKER_HOST or the
// default socket) and otherwise starts Debian's dockerd with a fresh data
// root, so the first build really is cold.
func (d *demo) startEngine(ctx context.Context) error {
	step("Docker engine")
	for _, host := range []string{os.Getenv("DOCKER_HOST"), "unix:///var/run/docker.sock"} {
		if host == "" {
			continue
		}
		c, err := client.New(client.WithHost(host))
		if err != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = c.Ping(pctx, client.PingOptions{})
		cancel()
		c.Close()
		if err == nil {
			d.engine = host
			fmt.Printf("reusing the engine at %s\n", host)
			break
		}
	}
	if d.engine == "" {
		dd, err := dockerd.Start(ctx, dockerd.Options{})
		if err != nil {
			return fmt.Errorf("no Docker engine answers and none could be started (on Debian/Ubuntu: sudo apt-get install -y docker.io, then run as root): %w", err)
		}
		d.defer_(func() { dd.Stop() })
		d.engine = dd.Host()
		fmt.Printf("started dockerd (no bridge network; builds use network host) at %s\n", d.engine)
	}
	if err := dockerd.ImportBusybox(ctx, d.engine, baseImage); err != nil {
		return err
	}
	fmt.Printf("base image %s made with docker import from busybox-static\n", baseImage)
	return nil
}

func (d *demo) startServices(ctx context.Context) error {
	step("registry, git server, GitHub App API stand-in, platform API stand-in")
	var err error
	if d.reg, err = registry.Start(ctx, registry.Options{User: "demo", Password: secret()}); err != nil {
		return err
	}
	d.defer_(func() { d.reg.Stop() })
	fmt.Printf("registry        http://%s (htpasswd auth)\n", d.reg.Addr())

	// The token is whatever the App token API issues next.
	if d.git, err = gitserver.Start(ctx, gitserver.Options{Token: secret()}); err != nil {
		return err
	}
	d.defer_(func() { d.git.Stop() })
	if d.repo, err = d.git.CreateRepo(owner + "/" + repo); err != nil {
		return err
	}
	files := map[string]gitserver.File{}
	err = fs.WalkDir(sampleApp, "sampleapp", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := sampleApp.ReadFile(p)
		files[strings.TrimPrefix(p, "sampleapp/")] = gitserver.Text(string(b))
		return err
	})
	if err != nil {
		return err
	}
	sha, err := d.repo.Commit("main", files, "sample app")
	if err != nil {
		return err
	}
	fmt.Printf("git server      %s/%s/%s.git (token auth), main at %s\n", d.git.URL(), owner, repo, sha[:12])

	gh, err := githubtest.New(appID)
	if err != nil {
		return err
	}
	d.defer_(gh.Close)
	gh.AddInstallation(installationID, owner, repo)
	gh.OnIssue(func(i githubtest.Issued) { d.git.AcceptToken(i.Token) })
	if err := os.WriteFile(filepath.Join(d.tmp, "app.pem"), gh.PrivateKeyPEM, 0o600); err != nil {
		return err
	}
	fmt.Printf("GitHub App API  %s (stand-in: checks the RS256 App JWT, one repo, contents: read)\n", gh.URL)
	d.ghURL = gh.URL

	d.callbackSecret = secret() + secret()
	if d.sink, err = callbacksink.Start(ctx, callbacksink.Options{Secret: []byte(d.callbackSecret)}); err != nil {
		return err
	}
	d.defer_(func() { d.sink.Stop() })
	fmt.Printf("platform API    %s (stand-in for service-cloud-api: verifies X-AF-Build-Token)\n", d.sink.URL())
	return nil
}
