package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/functions/dispatch/api"
	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/functions/dispatch/builds"
	"github.com/alternatefutures/af-builder/functions/dispatch/config"
	"github.com/alternatefutures/af-builder/functions/dispatch/dryrun"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubeclient"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/local"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp"
	"github.com/alternatefutures/af-builder/functions/dispatch/logging"
	"github.com/alternatefutures/af-builder/functions/dispatch/replay"
	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
)

// onShutdown runs when serve stops: the local executor's runners must not
// outlive it.
var onShutdown []func()

// dispatch is what newDispatch assembles: the core, the HTTP handler over
// it, and what the serve loop needs besides.
type dispatch struct {
	core *builds.Service
	http *api.Server
	log  *slog.Logger
	cfg  config.Config
}

// newDispatch reads the configuration and assembles dispatch. Only cheap,
// local work happens here (parsing, one small file); the GitHub key and the
// Kubernetes client are made on first use, so a Lambda cold start that only
// answers a ping or refuses a bad signature pays for neither.
//
// Every loader reads through one X_FILE-aware lookup and validates what it
// read.
func newDispatch(ctx context.Context, env envconfig.Lookuper, stdout, stderr io.Writer) (*dispatch, error) {
	cfg, err := config.Load(ctx, env)
	if err != nil {
		return nil, err
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.Level(), cfg.Logins(), cfg.Secrets()...)
	files := config.FileLookuper(env)

	var exec executor.Executor
	var memory replay.Memory // remembers dispatched builds past their Jobs; none for dry runs
	switch {
	case cfg.Executor == "local" && !cfg.DryRun:
		lcfg, err := local.LoadConfig(ctx, files)
		if err != nil {
			return nil, err
		}
		// Builds' output is the user-facing log of a local install.
		lcfg.Output = stdout
		l, err := local.New(lcfg)
		if err != nil {
			return nil, err
		}
		onShutdown = append(onShutdown, l.Close)
		exec = l
		memory = replay.NewInMemory()
	default:
		kcfg, err := kubernetes.LoadConfig(ctx, files)
		if err != nil {
			return nil, err
		}
		ccfg, err := kubeclient.Load(ctx, files)
		if err != nil {
			return nil, err
		}
		lazy := &lazyExecutor{cfg: kcfg, client: ccfg}
		exec, memory = lazy, &lazyLeases{l: lazy}
		if cfg.DryRun {
			memory = nil
			exec = dryrun.New(renderer(kcfg), stdout)
		}
	}
	if err := files.Err(); err != nil {
		return nil, fmt.Errorf("dispatch config: %w", err)
	}

	var subs subscriptions.Source
	switch {
	case cfg.SubscriptionsFile != "":
		s, err := subscriptions.LoadStatic(cfg.SubscriptionsFile)
		if err != nil {
			return nil, err
		}
		subs = s
	default:
		subs = &subscriptions.HTTP{URL: cfg.SubscriptionsURL, Secret: cfg.APIAuthSecret.Bytes(), Client: &http.Client{Timeout: cfg.LookupTimeout}}
	}

	gh := &lazyMinter{opts: githubapp.Options{
		AppID:      cfg.AppID,
		PrivateKey: []byte(cfg.AppPrivateKey.Reveal()),
		APIURL:     cfg.GitHubAPIURL,
	}}

	rel, err := newRelay(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("dispatch config: %w", err)
	}

	core := builds.New(coreConfig(cfg), builds.Deps{Executor: exec, GitHub: gh, Subscriptions: subs, Memory: memory, Logger: log})
	h := api.New(api.Config{
		WebhookSecret:          cfg.WebhookSecret.Bytes(),
		APISecret:              cfg.APIAuthSecret.Bytes(),
		MaxWebhookBytes:        cfg.MaxWebhookBytes,
		MaxAPIBytes:            cfg.MaxAPIBytes,
		WebhookBudget:          cfg.WebhookBudget,
		MaxInFlight:            cfg.MaxInFlight,
		DryRun:                 cfg.DryRun,
		Executor:               cfg.Executor,
		CallbackPlainHTTPHosts: cfg.CallbackPlainHTTPHosts,
		Relay:                  rel,
	}, core, log, nil)
	return &dispatch{core: core, http: h, log: log, cfg: cfg}, nil
}

func coreConfig(cfg config.Config) builds.Config {
	return builds.Config{
		CallbackSecret:         cfg.CallbackSecret.Bytes(),
		CallbackURL:            cfg.CallbackURL,
		CallbackPlainHTTPHosts: cfg.CallbackPlainHTTPHosts,
		GitHubURL:              cfg.GitHubURL,
		RegistryUser:           cfg.RegistryUser,
		RegistryToken:          cfg.RegistryToken.Reveal(),
		Runner:                 cfg.RunnerDefaults,
		Supersede:              cfg.Supersede,
		CallbackTimeout:        cfg.CancelCallbackTimeout,
		ReplayRetention:        cfg.ReplayRetention,
	}
}

func renderer(kcfg kubernetes.Config) dryrun.RenderFunc {
	return func(w io.Writer, b executor.Build) (executor.Handle, error) {
		job, secret, err := kubernetes.Render(kcfg, b)
		if err != nil {
			return executor.Handle{}, err
		}
		if err := kubernetes.RenderYAML(w, job, secret, true); err != nil {
			return executor.Handle{}, err
		}
		return executor.Handle{Name: job.Name, Namespace: job.Namespace}, nil
	}
}

// lazyExecutor makes the Kubernetes client on first use. A failure is not
// kept, so a transient one (a kubeconfig being rotated) heals.
type lazyExecutor struct {
	cfg    kubernetes.Config
	client kubeclient.Config
	mu     sync.Mutex
	e      *kubernetes.Executor
}

func (l *lazyExecutor) get() (*kubernetes.Executor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.e != nil {
		return l.e, nil
	}
	rc, err := l.client.RESTConfig()
	if err != nil {
		return nil, err
	}
	e, err := kubernetes.NewFromREST(rc, l.cfg)
	if err != nil {
		return nil, err
	}
	l.e = e
	return e, nil
}

func (l *lazyExecutor) Submit(ctx context.Context, b executor.Build) (executor.Handle, error) {
	e, err := l.get()
	if err != nil {
		return executor.Handle{}, err
	}
	return e.Submit(ctx, b)
}

func (l *lazyExecutor) Cancel(ctx context.Context, id string) error {
	e, err := l.get()
	if err != nil {
		return err
	}
	return e.Cancel(ctx, id)
}

func (l *lazyExecutor) Status(ctx context.Context, id string) (executor.State, error) {
	e, err := l.get()
	if err != nil {
		return "", err
	}
	return e.Status(ctx, id)
}

func (l *lazyExecutor) Active(ctx context.Context, serviceID, branch string) ([]string, error) {
	e, err := l.get()
	if err != nil {
		return nil, err
	}
	return e.Active(ctx, serviceID, branch)
}

func (l *lazyExecutor) Reap(ctx context.Context) ([]executor.Lost, error) {
	e, err := l.get()
	if err != nil {
		return nil, err
	}
	return e.Reap(ctx)
}

func (l *lazyExecutor) Superseded(ctx context.Context) ([]executor.Stale, error) {
	e, err := l.get()
	if err != nil {
		return nil, err
	}
	return e.Superseded(ctx)
}

// lazyMinter parses the App key on first use.
type lazyMinter struct {
	opts githubapp.Options
	mu   sync.Mutex
	m    *githubapp.Minter
}

func (l *lazyMinter) RepoToken(ctx context.Context, installationID int64, owner, repo string) (githubapp.Token, error) {
	l.mu.Lock()
	if l.m == nil {
		m, err := githubapp.New(l.opts)
		if err != nil {
			l.mu.Unlock()
			return githubapp.Token{}, err
		}
		l.m = m
	}
	m := l.m
	l.mu.Unlock()
	return m.RepoToken(ctx, installationID, owner, repo)
}

// runRender prints what POST /v1/builds would create for a request body,
// with every secret value redacted. It contacts nothing: credentials are
// placeholders, which the redaction would hide anyway.
func runRender(ctx context.Context, args []string, env envconfig.Lookuper, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "request body (JSON, as for POST /v1/builds); - for stdin")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "dispatch render: -f is required")
		return 2
	}
	if err := render(ctx, *file, env, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "dispatch render: %v\n", err)
		return 1
	}
	return 0
}

func render(ctx context.Context, file string, env envconfig.Lookuper, stdin io.Reader, stdout io.Writer) error {
	var body []byte
	var err error
	if file == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	cfg, err := config.Read(ctx, env)
	if err != nil {
		return err
	}
	files := config.FileLookuper(env)
	kcfg, err := kubernetes.LoadConfig(ctx, files)
	if err != nil {
		return err
	}
	if err := files.Err(); err != nil {
		return err
	}
	req, err := buildreq.Decode(body)
	if err != nil {
		return err
	}
	// Credentials stay placeholders: the redaction would hide them anyway.
	p := builds.New(coreConfig(cfg), builds.Deps{}).Params()
	e, err := req.Env(p)
	if err != nil {
		return err
	}
	_, err = renderer(kcfg)(stdout, req.Build(e, "api"))
	return err
}
