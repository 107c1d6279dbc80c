package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/workflows"
)

// freshnessOptions shape ktbench -freshness: how long after the
// simulator makes an event it is queryable in fact_ai_event_live, through
// webhooks (live landing) and through the pull at its shortest schedule.
type freshnessOptions struct {
	Runs      int
	Dir       string
	ChunkRows int
	// Webhook path: Rate deliveries a second of Events events each, for For.
	Rate   float64
	Events int
	For    time.Duration
	Window time.Duration // KTPIPE_WEBHOOK_BATCH
	Live   time.Duration // KTPIPE_WEBHOOK_LIVE
	// Pull path: a pull every PullEvery (KTPIPE_SCHEDULE_INTERVAL's
	// least, 1m), while events arrive at Rate × Events a second for
	// PullFor.
	PullEvery time.Duration
	PullFor   time.Duration
	// CompactEvery is KTPIPE_COMPACT_EVERY for both paths (0: off): the
	// loads wait for the compaction and the live view shows them first.
	CompactEvery time.Duration
	// LiveOnly is KTPIPE_WEBHOOK_LIVE_ONLY (it needs CompactEvery).
	LiveOnly bool
}

// env is the worker settings both paths share.
func (o freshnessOptions) env(m map[string]string) map[string]string {
	if o.CompactEvery > 0 {
		m["KTPIPE_COMPACT_EVERY"] = o.CompactEvery.String()
	}
	if o.LiveOnly {
		m["KTPIPE_WEBHOOK_LIVE_ONLY"] = "true"
	}
	return m
}

// pollEvery is how often the view's rows are read. An event is timed to
// the answer of the first read that shows it: late by at most this and
// that read's duration, never early.
const pollEvery = 250 * time.Millisecond

// readOutage bounds how long reads of the view may fail in a row.
const readOutage = time.Minute

// freshnessWait bounds the wait for the last event to show.
const freshnessWait = 5 * time.Minute

// latencies are one run's seconds from an event's creation to its first
// sight in the live view.
type latencies []float64

func (l latencies) quantile(q float64) float64 {
	s := slices.Clone(l)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func runFreshness(ctx context.Context, out io.Writer, o freshnessOptions) error {
	if o.Runs <= 0 || o.Rate <= 0 || o.Events <= 0 || o.For <= 0 {
		return errors.New("-runs, -freshness-rate, -freshness-events and -freshness-for must be positive")
	}
	logs, logger, tsrv, stop, err := startServices(ctx, out, o.Dir)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "event made at the simulator → first seen in fact_ai_event_live's rows (live_events or fact_ai_event, read every %s); services log: %s\n", pollEvery, logs.Name())
	e2e := e2eOptions{Dir: o.Dir, ChunkRows: o.ChunkRows}
	type row struct {
		path string
		runs []latencies
	}
	compacted := ""
	if o.CompactEvery > 0 {
		compacted = ", compacted"
	}
	liveOnly := ""
	if o.LiveOnly {
		liveOnly = ", live only"
	}
	rows := []row{{path: fmt.Sprintf("webhooks (batch %s, live every %s)%s%s", o.Window, o.Live, compacted, liveOnly)}}
	if o.PullEvery > 0 {
		rows = append(rows, row{path: fmt.Sprintf("pull every %s%s", o.PullEvery, compacted)})
	}
	for run := 1; run <= o.Runs; run++ {
		for i := range rows {
			fmt.Fprintf(os.Stderr, "ktbench -freshness: run %d/%d, %s ...\n", run, o.Runs, rows[i].path)
			name := fmt.Sprintf("fresh-%d-%d-%d", i, run, time.Now().Unix())
			var l latencies
			if i == 0 {
				l, err = freshWebhooks(ctx, tsrv, name, o, e2e, logs, logger)
			} else {
				l, err = freshPull(ctx, tsrv, name, o, e2e, logs, logger)
			}
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", run, rows[i].path, err)
			}
			rows[i].runs = append(rows[i].runs, l)
		}
	}
	fmt.Fprintf(out, "%-40s %8s %8s %8s %8s   (seconds; medians of %d runs)\n", "path", "events", "p50", "p95", "max", o.Runs)
	for _, r := range rows {
		var n, p50, p95, mx []float64
		for _, l := range r.runs {
			n = append(n, float64(len(l)))
			p50 = append(p50, l.quantile(0.5))
			p95 = append(p95, l.quantile(0.95))
			mx = append(mx, l.quantile(1))
		}
		fmt.Fprintf(out, "%-40s %8.0f %8.2f %8.2f %8.2f\n", r.path, middle(n), middle(p50), middle(p95), middle(mx))
	}
	return nil
}

// freshWebhooks has the simulator deliver every event it makes to the
// worker's receiver, and times each until it shows in the live view.
func freshWebhooks(ctx context.Context, tsrv *testsuite.DevServer, name string, o freshnessOptions, e2e e2eOptions, logs io.Writer, logger *slog.Logger) (latencies, error) {
	port, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	const secret = "whsec-ktbench"
	simCfg := freshSimConfig()
	simCfg.Webhooks = []ktsim.Webhook{{URL: "http://" + addr, Secret: secret, Subscription: "all"}}
	sim, simURL, stopSim, err := serveSim(simCfg)
	if err != nil {
		return nil, err
	}
	defer stopSim()
	w, err := startE2EWorker(ctx, tsrv, name, o.env(map[string]string{"KEEPTRUSTS_BASE_URL": simURL, "KEEPTRUSTS_API_TOKEN": simCfg.Token,
		"KTPIPE_WEBHOOK_ADDR": addr, "KEEPTRUSTS_WEBHOOK_SECRET": secret,
		"KTPIPE_WEBHOOK_BATCH": o.Window.String(), "KTPIPE_WEBHOOK_LIVE": o.Live.String()}), e2e, logs, logger)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	return timeEvents(ctx, w, sim, o.Rate, o.Events, o.For, nil)
}

// freshPull makes events at the same rate with no webhook, and runs
// IncrementalPull every o.PullEvery, as the schedule at its shortest does.
func freshPull(ctx context.Context, tsrv *testsuite.DevServer, name string, o freshnessOptions, e2e e2eOptions, logs io.Writer, logger *slog.Logger) (latencies, error) {
	simCfg := freshSimConfig()
	sim, simURL, stopSim, err := serveSim(simCfg)
	if err != nil {
		return nil, err
	}
	defer stopSim()
	w, err := startE2EWorker(ctx, tsrv, name, o.env(map[string]string{"KEEPTRUSTS_BASE_URL": simURL, "KEEPTRUSTS_API_TOKEN": simCfg.Token}), e2e, logs, logger)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	start := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	pulls := 0
	var last time.Time
	var running client.WorkflowRun
	var done chan error
	pull := func(ctx context.Context) error {
		if running != nil {
			select {
			case err := <-done:
				if err != nil {
					return fmt.Errorf("pull %s: %w", running.GetID(), err)
				}
				running = nil
			default:
				return nil // one pull at a time, as the schedule's overlap policy has it: this tick is skipped
			}
		}
		if !last.IsZero() && time.Since(last) < o.PullEvery {
			return nil
		}
		last = time.Now()
		pulls++
		in := w.pullInput(start)
		run, err := w.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s-pull-%d", name, pulls), TaskQueue: name}, workflows.IncrementalPull, in)
		if err != nil {
			return err
		}
		running, done = run, make(chan error, 1)
		go func() { done <- run.Get(ctx, nil) }()
		return nil
	}
	return timeEvents(ctx, w, sim, o.Rate, o.Events, o.PullFor, pull)
}

func freshSimConfig() ktsim.Config {
	c := ktsim.DefaultConfig()
	c.HistoryEvents = 0
	c.InvalidRate = 0 // every event can show
	return c
}

// timeEvents makes `events` events `rate` times a second for `d`, reads
// the live view every pollEvery (calling tick, when given, before each
// read) until every event has shown, and returns each event's latency.
func timeEvents(ctx context.Context, w *e2eWorker, sim *ktsim.Server, rate float64, events int, d time.Duration, tick func(context.Context) error) (latencies, error) {
	made := map[string]time.Time{}
	seen := map[string]bool{}
	var out latencies
	var failing time.Time // since when reads fail
	since := time.Now().Add(-time.Minute)
	look := func() error {
		if tick != nil {
			if err := tick(ctx); err != nil {
				return err
			}
		}
		ids, err := w.Activities.Warehouse.LandedSince(ctx, since)
		answered := time.Now() // the emulator may queue a read behind a commit: time to its answer, never earlier
		if err != nil {
			// The emulator times out reads while a commit holds it: the
			// events show at the next read that answers, their latency
			// counted to it.
			if failing.IsZero() {
				failing = time.Now()
			}
			if time.Since(failing) > readOutage {
				return fmt.Errorf("the live view unreadable for %s: %w", readOutage, err)
			}
			return nil
		}
		failing = time.Time{}
		for _, id := range ids {
			if t, ok := made[id]; ok && !seen[id] {
				seen[id] = true
				out = append(out, answered.Sub(t).Seconds())
			}
		}
		return nil
	}
	start := time.Now()
	every := time.Duration(float64(time.Second) / rate)
	next, nextLook := start, start
	for time.Since(start) < d {
		if now := time.Now(); !now.Before(next) {
			for _, id := range sim.Ingest(events, 0) {
				made[id] = now
			}
			next = next.Add(every)
		}
		if !time.Now().Before(nextLook) {
			if err := look(); err != nil {
				return nil, err
			}
			nextLook = time.Now().Add(pollEvery)
		}
		if err := sleepCtx(ctx, min(time.Until(next), time.Until(nextLook), pollEvery)); err != nil {
			return nil, err
		}
	}
	for deadline := time.Now().Add(freshnessWait); len(seen) < len(made); {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d events shown after %s", len(seen), len(made), freshnessWait)
		}
		if err := sleepCtx(ctx, pollEvery); err != nil {
			return nil, err
		}
		if err := look(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
