// Command starter (installed as ktpipe) steers the pipeline: the hourly
// schedule, backfills, one-off exports, replays, reconciliation, status,
// a live tail and the standard reports. Run it without arguments for the
// list of commands.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
	"go.temporal.io/sdk/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cli := &control.CLI{
		Stdout: os.Stdout, Stderr: os.Stderr,
		Dial: func(cfg config.Temporal) (client.Client, error) { return app.DialTemporal(cfg, logger) },
	}
	os.Exit(cli.Run(ctx, os.Args[1:]))
}
