package main

import (
	"log/slog"

	"github.com/alternatefutures/af-builder/functions/dispatch/config"
	"github.com/alternatefutures/af-builder/functions/dispatch/relay"
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
