// Command worker runs ktpipe's Temporal workers: configure it with
// environment variables (see README), point it at a Temporal cluster and
// a BigQuery project, and the schedule does the rest.
//
// `worker webhook` runs only the webhook receiver (KTPIPE_WEBHOOK_ADDR),
// for operators who expose it to the internet apart from the workers: it
// stages deliveries and signals their batches, which workers load.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var run func() error
	switch args := os.Args[1:]; {
	case len(args) == 0:
		var cfg config.Worker
		if err := config.Load(ctx, &cfg, nil); err != nil {
			fmt.Fprintln(os.Stderr, "worker: configuration:", err)
			os.Exit(2)
		}
		if _, err := app.TemporalOptions(cfg.Temporal); err != nil {
			fmt.Fprintln(os.Stderr, "worker: configuration:", err)
			os.Exit(2)
		}
		run = func() error { return app.RunWorker(ctx, cfg, logger) }
	case len(args) == 1 && args[0] == "webhook":
		var cfg config.Receiver
		if err := config.Load(ctx, &cfg, nil); err != nil {
			fmt.Fprintln(os.Stderr, "worker webhook: configuration:", err)
			os.Exit(2)
		}
		if _, err := app.TemporalOptions(cfg.Temporal); err != nil {
			fmt.Fprintln(os.Stderr, "worker webhook: configuration:", err)
			os.Exit(2)
		}
		run = func() error { return app.RunReceiver(ctx, cfg, logger) }
	default:
		fmt.Fprintln(os.Stderr, "usage: worker            run the workers (and the receiver with KTPIPE_WEBHOOK_ADDR)\n       worker webhook    run only the webhook receiver")
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}
