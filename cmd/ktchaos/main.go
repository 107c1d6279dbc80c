// Command ktchaos is ktpipe's chaos soak: the whole stack on this machine
// with a backfill, scheduled pulls and webhook deliveries at once, while
// the worker is SIGKILLed at random moments (and restarted at once), the
// Temporal dev server and the API are restarted, and the API fails for a
// while (500s, then hangs, then 429 storms). It prints each kill,
// restart and fault with how fast the pipeline recovered, and at the end
// compares the warehouse with the simulator's ground truth; it exits 1
// unless every valid event is in the fact table exactly once, every
// invalid one quarantined, and no workflow is left open.
//
//	go run ./cmd/ktchaos                 # the full soak: 20 kills
//	go run ./cmd/ktchaos -kills 5 -events 5000
//
// It runs its worker processes as "ktchaos worker", the same code as the
// worker command, so it needs no separate build.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/chaos"
	"github.com/ktpipe/ktpipe/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		os.Exit(worker(ctx))
	}
	os.Exit(soak(ctx))
}

// worker is the worker command, for the soak's worker processes.
func worker(ctx context.Context) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var cfg config.Worker
	if err := config.Load(ctx, &cfg, nil); err != nil {
		fmt.Fprintln(os.Stderr, "worker: configuration:", err)
		return 2
	}
	if err := app.RunWorker(ctx, cfg, logger); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

func soak(ctx context.Context) int {
	o := chaos.DefaultOptions()
	dir := flag.String("dir", o.Dir, "parent of the run's working directory (dev server database, staging, logs)")
	flag.Uint64Var(&o.Seed, "seed", 0, "seed of the chaos plan and the data (0: from the clock; printed)")
	flag.IntVar(&o.Events, "events", o.Events, "events in the simulated history")
	flag.IntVar(&o.Days, "days", o.Days, "days of simulated history (one backfill window each)")
	flag.Float64Var(&o.LiveRate, "live-rate", o.LiveRate, "new events per second during the soak")
	flag.IntVar(&o.Kills, "kills", o.Kills, "worker SIGKILLs")
	flag.IntVar(&o.TemporalRestarts, "temporal-restarts", o.TemporalRestarts, "dev server restarts")
	flag.IntVar(&o.SimRestarts, "api-restarts", o.SimRestarts, "API restarts")
	flag.DurationVar(&o.SimDown, "api-down", o.SimDown, "how long a restarted API refuses connections")
	flag.DurationVar(&o.FaultPhase, "fault-phase", o.FaultPhase, "length of each fault phase (500s, hangs, 429s), up to 3 times that while no request met the fault; 0: none")
	flag.DurationVar(&o.Hang, "hang", o.Hang, "how long a hanging API response stalls")
	flag.DurationVar(&o.MinGap, "min-gap", o.MinGap, "shortest random pause before a kill, restart or faults")
	flag.DurationVar(&o.MaxGap, "max-gap", o.MaxGap, "longest such pause")
	flag.DurationVar(&o.RecoveryBound, "recovery-bound", o.RecoveryBound, "how long to wait for recovery after a kill before going on")
	flag.DurationVar(&o.PullInterval, "pull-interval", o.PullInterval, "the schedule's interval")
	flag.DurationVar(&o.WebhookBatch, "webhook-batch", o.WebhookBatch, "KTPIPE_WEBHOOK_BATCH")
	flag.IntVar(&o.ChunkRows, "chunk-rows", o.ChunkRows, "KTPIPE_CHUNK_ROWS")
	flag.DurationVar(&o.Drain, "drain", o.Drain, "bound on the end (backfill, deliveries, last pull, every workflow closed)")
	flag.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole soak")
	flag.Parse()
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ktchaos:", err)
		return 2
	}
	o.WorkerCommand = []string{self, "worker"}
	o.Dir = filepath.Join(*dir, "run-"+time.Now().UTC().Format("20060102T150405Z"))
	r, err := chaos.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ktchaos:", err)
		return 2
	}
	if len(r.Problems()) > 0 {
		return 1
	}
	return 0
}
