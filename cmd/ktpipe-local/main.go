// Command ktpipe-local runs the whole pipeline on this machine: the
// Temporal dev server (UI on :8233), the BigQuery emulator, the Keeptrusts
// simulator and a worker. It applies the hourly schedule, backfills the
// simulator's history through the Export API, runs a pull, reconciles,
// and prints the standard reports from BigQuery.
//
//	scripts/run-local.sh            # build the tools once, then run this
//	go run ./cmd/ktpipe-local -keep # leave everything up to browse the UI
package main

import (
	"cmp"
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
	"path/filepath"
	"syscall"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/report"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

type options struct {
	dir          string
	days         int
	events       int
	temporalPort int
	uiPort       int
	simAddr      string
	webhookAddr  string
	keep         bool
	verbose      bool
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", ".ktpipe/local", "working directory for staging and logs")
	flag.IntVar(&o.days, "days", 7, "days of simulated history")
	flag.IntVar(&o.events, "events", 20000, "events in the simulated history")
	flag.IntVar(&o.temporalPort, "temporal-port", 7233, "Temporal frontend port")
	flag.IntVar(&o.uiPort, "ui-port", 8233, "Temporal UI port")
	flag.StringVar(&o.simAddr, "sim-addr", "127.0.0.1:8787", "simulator listen address")
	flag.StringVar(&o.webhookAddr, "webhook-addr", "127.0.0.1:8788", "the worker's webhook receiver address")
	flag.BoolVar(&o.keep, "keep", false, "keep everything running after the run, until Ctrl-C")
	flag.BoolVar(&o.verbose, "v", false, "show worker logs")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ktpipe-local:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	logs, err := os.Create(filepath.Join(o.dir, "services.log"))
	if err != nil {
		return err
	}
	defer logs.Close()
	var logOut io.Writer = logs
	if o.verbose {
		logOut = io.MultiWriter(logs, os.Stderr)
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))

	step("starting Temporal dev server on 127.0.0.1:%d (UI http://127.0.0.1:%d)", o.temporalPort, o.uiPort)
	tsrv, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
		HostPort: fmt.Sprintf("127.0.0.1:%d", o.temporalPort), UIPort: o.uiPort, Logs: logs,
		SearchAttributes: app.SearchAttributeTypes(),
	})
	if err != nil {
		return fmt.Errorf("%w (is another Temporal server using port %d? pick -temporal-port)", err, o.temporalPort)
	}
	defer tsrv.Stop()

	step("starting BigQuery emulator")
	emu, err := devstack.StartEmulator(ctx, "ktpipe-local", logs)
	if err != nil {
		return err
	}
	defer emu.Stop()

	simCfg := ktsim.DefaultConfig()
	simCfg.HistoryDays, simCfg.HistoryEvents = o.days, o.events
	simCfg.Faults = ktsim.Faults{ErrorRate: 0.02, RateLimitRate: 0.02, DropRate: 0.2, ResendRate: 0.1}
	const webhookSecret = "whsec-local"
	simCfg.Webhooks = []ktsim.Webhook{{URL: "http://" + o.webhookAddr, Secret: webhookSecret, Subscription: "all"}}
	sim := ktsim.New(simCfg)
	defer sim.Close()
	ln, err := net.Listen("tcp", o.simAddr)
	if err != nil {
		return fmt.Errorf("simulator: %w (pick -sim-addr)", err)
	}
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go simSrv.Serve(ln)
	defer simSrv.Close()
	step("Keeptrusts simulator on http://%s: %d events over %d days, with late events, invalid events and injected faults", o.simAddr, o.events, o.days)

	userMap := filepath.Join(o.dir, "users.csv")
	if err := writeUserMap(userMap, sim.Users()); err != nil {
		return err
	}
	// The same configuration a deployed worker reads from its environment.
	env := map[string]string{
		"TEMPORAL_ADDRESS":          tsrv.FrontendHostPort(),
		"TEMPORAL_CONFIG_FILE":      os.DevNull, // not the user's own Temporal CLI profile: this stack's dev server
		"KEEPTRUSTS_BASE_URL":       "http://" + ln.Addr().String(),
		"KEEPTRUSTS_API_TOKEN":      simCfg.Token,
		"BIGQUERY_PROJECT":          "ktpipe-local",
		"BIGQUERY_DATASET":          "keeptrusts",
		"BIGQUERY_ENDPOINT":         emu.Endpoint,
		"KTPIPE_STAGING_DIR":        filepath.Join(o.dir, "staging"),
		"KTPIPE_CHUNK_ROWS":         "5000",
		"KTPIPE_USER_MAP":           userMap,
		"KTPIPE_EXPORT_GZIP":        "true",
		"KTPIPE_WEBHOOK_ADDR":       o.webhookAddr,
		"KEEPTRUSTS_WEBHOOK_SECRET": webhookSecret,
		"KTPIPE_WEBHOOK_BATCH":      "5s",
		"KTPIPE_METRICS_ADDR":       "127.0.0.1:9464",
		// The pull and the webhook batch defer their loads; the run
		// compacts them once it has pulled (below).
		"KTPIPE_COMPACT_EVERY": "1h",
	}
	var cfg config.Worker
	if err := config.Load(ctx, &cfg, envconfig.MapLookuper(env)); err != nil {
		return err
	}
	step("starting worker (task queue %s)", cfg.Temporal.TaskQueue)
	w, err := app.StartWorker(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer w.Stop()
	ctl := &control.Control{Client: w.Client, TaskQueue: cfg.Temporal.TaskQueue, Tuning: workflows.Tuning{Concurrency: cfg.Pipeline.Concurrency}}

	step("applying the schedule %s: every %s, overlap skip", ctl.ScheduleName(), cfg.Pipeline.ScheduleInterval)
	if _, err := ctl.ApplySchedule(ctx, control.ScheduleSpec{Interval: cfg.Pipeline.ScheduleInterval, CatchupWindow: cfg.Pipeline.CatchupWindow,
		Pull: control.PullInput(cfg.Pipeline)}); err != nil {
		return err
	}
	step("applying the compaction's schedule %s: every %s", ctl.CompactScheduleID(), cmp.Or(cfg.Pipeline.CompactEvery, workflows.DefaultCompactEvery))
	if _, err := ctl.ApplyCompactSchedule(ctx, cfg.Pipeline.CompactEvery, false); err != nil {
		return err
	}

	now := time.Now().UTC()
	since := now.Add(-time.Duration(o.days+1) * 24 * time.Hour).Truncate(24 * time.Hour)
	until := now.Truncate(time.Hour).Add(time.Hour)
	step("backfilling %s .. %s through the Export API (one export per day, 2 at a time)", since.Format(time.RFC3339), until.Format(time.RFC3339))
	bf, err := ctl.StartBackfill(ctx, workflows.BackfillInput{Since: since, Until: until, Window: 24 * time.Hour,
		Parallelism: cfg.Pipeline.BackfillParallelism, Format: cfg.Pipeline.ExportFormat, Gzip: cfg.Pipeline.ExportGzip})
	if err != nil {
		return err
	}
	var bres workflows.BackfillResult
	if err := control.Follow(ctx, w.Client, bf, os.Stdout, &bres); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	fmt.Printf("    %d windows loaded, %d rows, %d quarantined\n", bres.Loaded, bres.Rows, bres.Quarantined)

	step("new and late events arrive; webhooks push them, the worker batches them for %s", cfg.Webhook.Batch)
	sim.Ingest(500, 0.3)
	wres, err := waitWebhookBatch(ctx, ctl, w.Client)
	if err != nil {
		return err
	}
	fmt.Printf("    webhook batch: %d deliveries, %d rows, %d quarantined\n", wres.Deliveries, wres.Rows, wres.Quarantined)

	step("triggering the scheduled pull: it serves the same events again, and the merge keeps one of each")
	id, err := ctl.TriggerSchedule(ctx)
	if err != nil {
		return err
	}
	var pres workflows.IncrementalPullResult
	if err := w.Client.GetWorkflow(ctx, id, "").Get(ctx, &pres); err != nil {
		return fmt.Errorf("pull %s: %w", id, err)
	}
	fmt.Printf("    pull %s: %d batches, %d rows, %d quarantined\n", id, pres.Batches, pres.Rows, pres.Quarantined)

	step("compacting now rather than at the next scheduled run: the pull's and webhook batch's pending loads commit together")
	if id, err = ctl.TriggerCompaction(ctx); err != nil {
		return err
	}
	var cres workflows.CompactResult
	if err := w.Client.GetWorkflow(ctx, id, "").Get(ctx, &cres); err != nil {
		return fmt.Errorf("compaction %s: %w", id, err)
	}
	fmt.Printf("    compaction %s: %d loads, %d rows, %d quarantined\n", id, cres.Loads, cres.Rows, cres.Quarantined)

	step("reconciling the backfilled range per day against the API's count")
	rc, err := ctl.StartReconcile(ctx, workflows.ReconcileInput{Since: since, Until: until, Step: 24 * time.Hour})
	if err != nil {
		return err
	}
	var rres workflows.ReconcileResult
	if err := rc.Get(ctx, &rres); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	control.PrintReconcile(os.Stdout, rres)

	wh := w.Activities.Warehouse
	if err := report.PrintViews(ctx, os.Stdout, wh, warehouse.Views, 12, since); err != nil {
		return err
	}
	fmt.Printf("\nTemporal UI: http://127.0.0.1:%d/namespaces/default/schedules/%s\n", o.uiPort, ctl.ScheduleName())
	if o.keep {
		fmt.Println("Everything keeps running; Ctrl-C stops it.")
		<-ctx.Done()
	}
	if errors.Is(ctx.Err(), context.Canceled) && !o.keep {
		return ctx.Err()
	}
	return nil
}

// waitWebhookBatch waits for the first webhook batch to finish.
func waitWebhookBatch(ctx context.Context, ctl *control.Control, c client.Client) (workflows.WebhookBatchResult, error) {
	var res workflows.WebhookBatchResult
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		done, err := ctl.ListWorkflows(ctx, "Completed", 100)
		if err != nil {
			return res, err
		}
		for _, wf := range done {
			if wf.Type == "WebhookBatch" {
				err := c.GetWorkflow(ctx, wf.ID, wf.RunID).Get(ctx, &res)
				return res, err
			}
		}
	}
	return res, errors.New("no webhook batch finished within a minute")
}

func writeUserMap(path string, users []ktsim.User) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, "user,team,department")
	for _, u := range users {
		fmt.Fprintf(f, "%s,%s,%s\n", u.Name, u.Team, u.Department)
	}
	return f.Close()
}
