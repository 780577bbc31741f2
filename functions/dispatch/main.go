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

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/sethvargo/go-envconfig"

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
	h, log, err := newHandler(ctx, env, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch: %v\n", err)
		return 1
	}
	log.Info("dispatch starting under AWS Lambda")
	// lambda.Start runs the Runtime API loop and never returns; it exits
	// the process itself if the loop fails.
	lambda.StartWithOptions(lambdaadapter.New(h).Invoke, lambda.WithContext(ctx))
	return 0
}

func runServe(ctx context.Context, args []string, env envconfig.Lookuper, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	h, log, err := newHandler(ctx, env, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "dispatch: listen: %v\n", err)
		return 1
	}
	srv := &http.Server{
		Handler:           h,
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
	for _, f := range onShutdown {
		f()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
