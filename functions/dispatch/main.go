// Command dispatch receives GitHub push webhooks and build requests from
// service-cloud-api and runs each build as a Kubernetes Job.
//
//	dispatch serve [--addr :8080]        plain HTTP server
//	dispatch render -f request.json      print the Job and Secret (redacted)
//	dispatch                             under AWS Lambda (AWS_LAMBDA_RUNTIME_API set)
//
// The same handler serves all modes; configuration comes from the
// environment (see README.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/functions/dispatch/api"
	"github.com/alternatefutures/af-builder/functions/dispatch/builds"
	"github.com/alternatefutures/af-builder/functions/dispatch/lambdaadapter"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], envconfig.OsLookuper(), os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  dispatch serve [--addr ADDR]     serve HTTP (default when not under Lambda)
  dispatch render -f FILE          print the Job and Secret for a /v1/builds body (- for stdin)
Under AWS Lambda (AWS_LAMBDA_RUNTIME_API set) dispatch serves Function URL
and API Gateway HTTP API events whatever the arguments.
`

func run(ctx context.Context, args []string, env envconfig.Lookuper, stdin io.Reader, stdout, stderr io.Writer) int {
	if _, ok := env.Lookup("AWS_LAMBDA_RUNTIME_API"); ok {
		return runLambda(ctx, env, stdout, stderr)
	}
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, env, stdout, stderr)
	case "render":
		return runRender(ctx, args, env, stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "dispatch: unknown command %q\n%s", cmd, usage)
		return 2
	}
}

func runLambda(ctx context.Context, env envconfig.Lookuper, stdout, stderr io.Writer) int {
	d, err := newDispatch(ctx, env, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch: %v\n", err)
		return 1
	}
	d.log.Info("dispatch starting under AWS Lambda")
	// lambda.Start runs the Runtime API loop and never returns; it exits
	// the process itself if the loop fails.
	lambda.StartWithOptions(lambdaHandler(d.http, d.core, d.log), lambda.WithContext(ctx))
	return 0
}

// scheduledEvent is the part of an EventBridge scheduled event that tells
// it apart from an HTTP event.
type scheduledEvent struct {
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
}

// lambdaHandler serves HTTP events through the adapter and runs the reaper
// on EventBridge's schedule (infra/lambda/template.yaml): a Lambda has no
// process of its own between invocations to run a ticker in.
func lambdaHandler(h *api.Server, core *builds.Service, log *slog.Logger) func(context.Context, json.RawMessage) (any, error) {
	adapter := lambdaadapter.New(h)
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var sched scheduledEvent
		if json.Unmarshal(raw, &sched) == nil && sched.DetailType == "Scheduled Event" && sched.Source == "aws.events" {
			n, err := core.Reap(ctx)
			if err != nil {
				// Returned, so the invocation counts as an error in
				// Lambda's metrics; what was reported stays reported.
				return nil, fmt.Errorf("reaped %d: %w", n, err)
			}
			return map[string]int{"reaped": n}, nil
		}
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(raw, &ev); err != nil {
			log.Warn("event is neither an HTTP request nor a schedule", "err", err)
			return nil, fmt.Errorf("decode event: %w", err)
		}
		resp, err := adapter.Invoke(ctx, ev)
		// A sandbox is frozen once the invocation returns: a push's
		// follow-ups and the deliveries the relay still has in flight must
		// end first (each is bounded).
		core.Wait()
		for _, f := range afterInvoke {
			f()
		}
		return resp, err
	}
}

func runServe(ctx context.Context, args []string, env envconfig.Lookuper, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	d, err := newDispatch(ctx, env, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch: listen: %v\n", err)
		return 1
	}
	log := d.log
	srv := &http.Server{
		Handler:           d.http,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("dispatch listening", "addr", ln.Addr().String())
	reaperDone := startReaper(ctx, d.core, d.cfg.ReapInterval, log)

	select {
	case err := <-errc:
		log.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	// The reaper and the pushes' follow-ups stop before the executor
	// closes: Close stops runners, which then report themselves.
	<-reaperDone
	d.core.Wait()
	for _, f := range onShutdown {
		f()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// startReaper reports builds whose runner died unreported, every interval,
// until ctx ends; the returned channel closes when it has stopped. A
// non-positive interval disables it (REAP_INTERVAL=0).
func startReaper(ctx context.Context, core *builds.Service, every time.Duration, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	if every <= 0 {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// One round may not outlast the next tick, so a slow API
			// server cannot pile rounds up.
			rctx, cancel := context.WithTimeout(ctx, every)
			if _, err := core.Reap(rctx); err != nil && ctx.Err() == nil {
				log.Error("reaper round failed", "err", err)
			}
			cancel()
		}
	}()
	return done
}
