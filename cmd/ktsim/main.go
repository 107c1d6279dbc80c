// Command ktsim serves a simulated Keeptrusts API on a local port: the
// contract's Events, Export and tail endpoints with synthetic data, late
// events and injectable faults, plus /_sim/truth (what exists),
// /_sim/ingest (make events arrive) and /_sim/users.csv (a user mapping).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ktsim:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := ktsim.DefaultConfig()
	addr := flag.String("addr", "127.0.0.1:8787", "listen address")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the synthetic data")
	flag.IntVar(&cfg.HistoryDays, "history-days", cfg.HistoryDays, "days of history before now")
	flag.IntVar(&cfg.HistoryEvents, "history-events", cfg.HistoryEvents, "events in the history")
	flag.Float64Var(&cfg.LiveRate, "live-rate", cfg.LiveRate, "new events per second")
	flag.Float64Var(&cfg.LateRate, "late-rate", cfg.LateRate, "fraction of events delivered late")
	flag.Float64Var(&cfg.InvalidRate, "invalid-rate", cfg.InvalidRate, "fraction of events that break a validation rule")
	flag.StringVar(&cfg.AddedField, "added-field", "", "a field the contract does not name yet, on every event")
	flag.Float64Var(&cfg.Faults.ErrorRate, "fault-500", 0, "probability of a 500")
	flag.Float64Var(&cfg.Faults.RateLimitRate, "fault-429", 0, "probability of a 429 with Retry-After")
	flag.IntVar(&cfg.Faults.RetryAfter, "retry-after", 1, "seconds in Retry-After")
	flag.Float64Var(&cfg.Faults.DropRate, "fault-drop", 0, "probability a download is cut midway")
	flag.Float64Var(&cfg.Faults.SlowRate, "fault-slow", 0, "probability a response is slow")
	flag.DurationVar(&cfg.Faults.Slow, "slow", 2*time.Second, "delay of a slow response")
	flag.Float64Var(&cfg.Faults.ResendRate, "fault-resend", 0, "probability a page resends earlier events")
	flag.Float64Var(&cfg.Faults.HangRate, "fault-hang", 0, "probability a response stalls mid-body, then is cut")
	flag.DurationVar(&cfg.Faults.Hang, "hang", 2*time.Minute, "how long a hanging response stalls")
	flag.Float64Var(&cfg.Faults.ExportFailRate, "fault-export-fail", 0, "probability an export fails")
	webhook := flag.String("webhook-url", "", "post webhook deliveries here")
	flag.Parse()
	cfg.Token = os.Getenv("KTSIM_TOKEN")
	if cfg.Token == "" {
		cfg.Token = "sim-token"
	}
	if *webhook != "" {
		secret := os.Getenv("KTSIM_WEBHOOK_SECRET")
		if secret == "" {
			return errors.New("KTSIM_WEBHOOK_SECRET: must be set with -webhook-url")
		}
		cfg.Webhooks = []ktsim.Webhook{{URL: *webhook, Secret: secret, Subscription: "all"}}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	sim := ktsim.New(cfg)
	defer sim.Close()
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	slog.Info("ktsim serving", "url", "http://"+ln.Addr().String(), "events", cfg.HistoryEvents, "days", cfg.HistoryDays)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
