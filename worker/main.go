// Command worker runs ktpipe's Temporal workers: configure it with
// environment variables (see README), point it at a Temporal cluster and
// a BigQuery project, and the schedule does the rest.
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
	var cfg config.Worker
	if err := config.Load(ctx, &cfg, nil); err != nil {
		fmt.Fprintln(os.Stderr, "worker: configuration:", err)
		os.Exit(2)
	}
	if err := app.RunWorker(ctx, cfg, logger); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}
