package main

import (
	"context"
	"log/slog"

	"github.com/alternatefutures/af-builder/functions/dispatch/config"
	"github.com/alternatefutures/af-builder/functions/dispatch/relay"
	"github.com/alternatefutures/af-builder/functions/dispatch/replay"
)

// afterInvoke runs after each Lambda HTTP invocation, before it returns.
var afterInvoke []func()

// newRelay makes the webhook relay when RELAY_URL is set; nil otherwise.
// serve waits for deliveries in flight when it stops; Lambda after each
// invocation.
func newRelay(cfg config.Config, log *slog.Logger) (*relay.Relay, error) {
	if cfg.RelayURL == "" {
		return nil, nil
	}
	plain, err := cfg.PlainHTTPHosts()
	if err != nil {
		return nil, err
	}
	r, err := relay.New(relay.Config{
		URL:       cfg.RelayURL,
		Pushes:    cfg.RelayPushes,
		Timeout:   cfg.RelayTimeout,
		PlainHTTP: plain,
		Log:       log,
	})
	if err != nil {
		return nil, err
	}
	onShutdown = append(onShutdown, r.Wait)
	afterInvoke = append(afterInvoke, r.Wait)
	return r, nil
}

// lazyLeases is the replay memory of the Kubernetes executor, made with its
// client on first use.
type lazyLeases struct{ l *lazyExecutor }

func (m *lazyLeases) get() (*replay.Leases, error) {
	e, err := m.l.get()
	if err != nil {
		return nil, err
	}
	return e.Records(), nil
}

func (m *lazyLeases) Claim(ctx context.Context, r replay.Record) (replay.Record, bool, error) {
	l, err := m.get()
	if err != nil {
		return replay.Record{}, false, err
	}
	return l.Claim(ctx, r)
}

func (m *lazyLeases) Update(ctx context.Context, id, state, job, ns string) error {
	l, err := m.get()
	if err != nil {
		return err
	}
	return l.Update(ctx, id, state, job, ns)
}

func (m *lazyLeases) Get(ctx context.Context, id string) (replay.Record, bool, error) {
	l, err := m.get()
	if err != nil {
		return replay.Record{}, false, err
	}
	return l.Get(ctx, id)
}

func (m *lazyLeases) List(ctx context.Context) ([]replay.Record, error) {
	l, err := m.get()
	if err != nil {
		return nil, err
	}
	return l.List(ctx)
}

func (m *lazyLeases) Forget(ctx context.Context, id string) error {
	l, err := m.get()
	if err != nil {
		return err
	}
	return l.Forget(ctx, id)
}
