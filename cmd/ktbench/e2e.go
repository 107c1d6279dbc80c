package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sethvargo/go-envconfig"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// e2eOptions shape an end-to-end run (ktbench -e2e).
type e2eOptions struct {
	Events    int    // events in the simulator's history, for the export and the pull
	Runs      int    // runs of each path; medians are printed
	ChunkRows int    // KTPIPE_CHUNK_ROWS of the worker
	Dir       string // staging and the services' log
	// WebhookRate is the simulator's deliveries per second for
	// WebhookFor (0: the webhook path is skipped), each of
	// WebhookEvents events; the worker batches them every WebhookWindow.
	WebhookRate float64
	// SharedSignals is KTPIPE_WEBHOOK_SHARED_SIGNALS of the worker.
	SharedSignals bool
	WebhookFor    time.Duration
	WebhookEvents int
	WebhookWindow time.Duration
}

// e2ePhaseTimeout bounds one workflow of the benchmark: a stuck run is an
// error, not a hang. An hour is ~10× what 1M events take on 2 cores.
const e2ePhaseTimeout = time.Hour

// phaseResult is what one workflow of the benchmark measured, from its
// history (every run of a continue-as-new chain).
type phaseResult struct {
	Wall       time.Duration // first run's start to last run's close
	Idle       time.Duration // of Wall, no activity running: Temporal's overhead, with the timers below
	TimerIdle  time.Duration // of Idle, a workflow timer running (export status polls)
	QueueIdle  time.Duration // of Idle, no timer either, an activity waiting for a worker slot
	Stage      time.Duration // union of the StageChunk activities' run intervals
	Commit     time.Duration // union of the MergeLoad activities' run intervals
	Rows       int64         // valid rows loaded (the workflow's result)
	Records    int64         // records read: rows + quarantined
	Commits    int           // commit transactions started (CommitBatch scripts)
	Activities int           // activity executions in the history
	Signals    int           // signals the workflows received (deliveries share them)
	Retried    int           // of them, ended on an attempt after the first
	// Webhook path only.
	Deliveries      int64         // deliveries the receiver accepted (2xx)
	Offered         float64       // deliveries per second the simulator sent
	Accepted        float64       // deliveries per second accepted, first sent to last answered
	Batches         int           // WebhookBatch workflows
	DeliveryRetries int64         // the simulator's attempts after a refused or unanswered one
	GaveUp          int64         // deliveries the simulator gave up on (lost to the benchmark)
	Span            time.Duration // first delivery sent to last batch closed
}

// runE2E runs the whole workflow on the local stack: one Temporal dev
// server for every run, and per path and run a fresh emulator, worker
// and dataset, so runs are comparable and each load lands in an empty
// fact table as a first backfill does.
func runE2E(ctx context.Context, out io.Writer, o e2eOptions) error {
	if o.Events <= 0 || o.Runs <= 0 || o.ChunkRows <= 0 {
		return errors.New("-e2e-events, -runs and -chunk-rows must be positive")
	}
	if o.WebhookRate > 0 && (o.WebhookFor <= 0 || o.WebhookEvents <= 0 || o.WebhookWindow <= 0) {
		return errors.New("-e2e-webhook-for, -e2e-webhook-events and -e2e-webhook-window must be positive with -e2e-webhook-rate")
	}
	startLoad := loadAverage()
	logs, logger, tsrv, stop, err := startServices(ctx, out, o.Dir)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "one process: worker, simulator and this driver; chunks of %d rows; no injected faults; services log: %s\n",
		o.ChunkRows, logs.Name())

	// One history for the export and the pull: building it is not
	// measured, and both paths read it without changing it.
	simCfg := ktsim.DefaultConfig()
	simCfg.HistoryEvents = o.Events
	sim, simURL, stopSim, err := serveSim(simCfg)
	if err != nil {
		return err
	}
	defer stopSim()
	now := time.Now().UTC()
	since := now.Add(-time.Duration(simCfg.HistoryDays+1) * 24 * time.Hour).Truncate(time.Hour)
	until := now.Add(time.Hour).Truncate(time.Hour)
	truth := sim.Truth(since, until)
	want := int64(len(truth.Valid) + len(truth.Invalid))

	results := map[string][]phaseResult{}
	paths := []string{"export", "pull"}
	if o.WebhookRate > 0 {
		paths = append(paths, "webhooks")
	}
	for run := 1; run <= o.Runs; run++ {
		for _, path := range paths {
			fmt.Fprintf(os.Stderr, "ktbench -e2e: run %d/%d, %s ...\n", run, o.Runs, path)
			name := fmt.Sprintf("e2e-%s-%d-%d", path, run, now.Unix())
			var r phaseResult
			switch path {
			case "export":
				r, err = e2eExport(ctx, tsrv, simURL, simCfg.Token, name, o, logs, logger, since, until)
			case "pull":
				r, err = e2ePull(ctx, tsrv, simURL, simCfg.Token, name, o, logs, logger, since)
			case "webhooks":
				r, err = e2eWebhooks(ctx, tsrv, name, o, logs, logger)
			}
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", run, path, err)
			}
			if path != "webhooks" && r.Records != want {
				return fmt.Errorf("run %d, %s: read %d records, the simulator holds %d", run, path, r.Records, want)
			}
			results[path] = append(results[path], r)
		}
	}
	printE2E(out, o, results, paths)
	fmt.Fprintf(out, "load average: %s at the start, %s at the end\n", startLoad, loadAverage())
	return nil
}

// loadAverage is the machine's 1, 5 and 15 minute load averages: on a
// shared machine, what else ran beside the benchmark.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// startServices prints the machine and starts what every -e2e and
// -freshness run shares: the services log in dir and one Temporal dev
// server (in memory).
func startServices(ctx context.Context, out io.Writer, dir string) (logs *os.File, logger *slog.Logger, tsrv *testsuite.DevServer, stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, nil, nil, err
	}
	if logs, err = os.Create(filepath.Join(dir, "services.log")); err != nil {
		return nil, nil, nil, nil, err
	}
	logger = slog.New(slog.NewTextHandler(logs, nil))
	fmt.Fprintf(out, "machine: %s, %d cores, GOMAXPROCS=%d, %s; Temporal CLI %s dev server (in memory), BigQuery emulator %s\n",
		cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), devstack.TemporalCLIVersion, devstack.BQEmulatorVersion)
	if tsrv, err = devstack.StartTemporal(ctx, devstack.TemporalOptions{Logs: logs, SearchAttributes: app.SearchAttributeTypes()}); err != nil {
		logs.Close()
		return nil, nil, nil, nil, err
	}
	return logs, logger, tsrv, func() { tsrv.Stop(); logs.Close() }, nil
}

// serveSim starts a simulator and serves it on a free loopback port;
// stop stops both.
func serveSim(cfg ktsim.Config) (sim *ktsim.Server, url string, stop func(), err error) {
	sim = ktsim.New(cfg)
	url, stopServing, err := serveLoopback(sim)
	if err != nil {
		sim.Close()
		return nil, "", nil, err
	}
	return sim, url, func() { stopServing(); sim.Close() }, nil
}

// serveLoopback serves h on a free loopback port.
func serveLoopback(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// e2eWorker is one path's fresh emulator and in-process worker (as
// cmd/ktpipe-local starts them), with its commit transactions counted.
type e2eWorker struct {
	*app.Running
	cfg     config.Worker
	commits atomic.Int64
	stop    func()
}

func startE2EWorker(ctx context.Context, tsrv *testsuite.DevServer, name string, env map[string]string, o e2eOptions, logs io.Writer, logger *slog.Logger) (*e2eWorker, error) {
	emu, err := devstack.StartEmulator(ctx, "ktbench", logs)
	if err != nil {
		return nil, err
	}
	base := map[string]string{
		"TEMPORAL_ADDRESS":     tsrv.FrontendHostPort(),
		"TEMPORAL_CONFIG_FILE": os.DevNull, // this stack's dev server, not the user's profile
		"KTPIPE_TASK_QUEUE":    name,
		"BIGQUERY_PROJECT":     "ktbench",
		"BIGQUERY_DATASET":     strings.ReplaceAll(name, "-", "_"),
		"BIGQUERY_ENDPOINT":    emu.Endpoint,
		"KTPIPE_STAGING_DIR":   filepath.Join(o.Dir, name),
		"KTPIPE_CHUNK_ROWS":    fmt.Sprint(o.ChunkRows),
		"KTPIPE_METRICS_ADDR":  "127.0.0.1:0",
	}
	for k, v := range env {
		base[k] = v
	}
	w := &e2eWorker{}
	if err := config.Load(ctx, &w.cfg, envconfig.MapLookuper(base)); err != nil {
		emu.Stop()
		return nil, err
	}
	if w.Running, err = app.StartWorker(ctx, w.cfg, logger); err != nil {
		emu.Stop()
		return nil, err
	}
	// Set once before any workflow starts; the gauge refresher the worker
	// started may already run queries, which this counter ignores.
	w.Activities.Warehouse.SetStatementObserver(func(s warehouse.Statement) {
		if s.What == "commit batch" {
			w.commits.Add(1)
		}
	})
	w.stop = func() {
		w.Running.Stop()
		emu.Stop()
		os.RemoveAll(filepath.Join(o.Dir, name))
	}
	return w, nil
}

func (w *e2eWorker) tuning() workflows.Tuning {
	return workflows.Tuning{Concurrency: w.cfg.Pipeline.Concurrency}
}

// pullInput is an IncrementalPull from start with the worker's settings,
// as the schedule would run it.
func (w *e2eWorker) pullInput(start string) workflows.IncrementalPullInput {
	p := w.cfg.Pipeline
	return workflows.IncrementalPullInput{Start: start, PageSize: p.PageSize, PagesPerBatch: p.PagesPerBatch,
		BatchesPerRun: p.BatchesPerRun, LateWindow: p.LateWindow, Defer: p.CompactEvery > 0, Tuning: w.tuning()}
}

// e2eExport loads the whole history through one ExportLoad.
func e2eExport(ctx context.Context, tsrv *testsuite.DevServer, simURL, token, name string, o e2eOptions, logs io.Writer, logger *slog.Logger, since, until time.Time) (phaseResult, error) {
	w, err := startE2EWorker(ctx, tsrv, name, map[string]string{"KEEPTRUSTS_BASE_URL": simURL, "KEEPTRUSTS_API_TOKEN": token}, o, logs, logger)
	if err != nil {
		return phaseResult{}, err
	}
	defer w.stop()
	ctx, cancel := context.WithTimeout(ctx, e2ePhaseTimeout)
	defer cancel()
	in := workflows.ExportLoadInput{Since: since, Until: until, Format: w.cfg.Pipeline.ExportFormat, Gzip: w.cfg.Pipeline.ExportGzip, Tuning: w.tuning()}
	run, err := w.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: name, TaskQueue: name}, workflows.ExportLoad, in)
	if err != nil {
		return phaseResult{}, err
	}
	var res workflows.ExportLoadResult
	if err := run.Get(ctx, &res); err != nil {
		return phaseResult{}, err
	}
	r, err := measureHistory(ctx, w.Client, name, run.GetRunID())
	r.Rows, r.Records, r.Commits = res.Rows, res.Rows+res.Quarantined, int(w.commits.Load())
	return r, err
}

// e2ePull loads the whole history through one IncrementalPull from an
// empty checkpoint (with its continue-as-new runs).
func e2ePull(ctx context.Context, tsrv *testsuite.DevServer, simURL, token, name string, o e2eOptions, logs io.Writer, logger *slog.Logger, since time.Time) (phaseResult, error) {
	w, err := startE2EWorker(ctx, tsrv, name, map[string]string{"KEEPTRUSTS_BASE_URL": simURL, "KEEPTRUSTS_API_TOKEN": token}, o, logs, logger)
	if err != nil {
		return phaseResult{}, err
	}
	defer w.stop()
	ctx, cancel := context.WithTimeout(ctx, e2ePhaseTimeout)
	defer cancel()
	run, err := w.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: name, TaskQueue: name}, workflows.IncrementalPull, w.pullInput(since.Format(time.RFC3339)))
	if err != nil {
		return phaseResult{}, err
	}
	var res workflows.IncrementalPullResult
	if err := run.Get(ctx, &res); err != nil { // follows continue-as-new to the last run
		return phaseResult{}, err
	}
	r, err := measureHistory(ctx, w.Client, name, run.GetRunID())
	r.Rows, r.Records, r.Commits = res.Rows, res.Rows+res.Quarantined, int(w.commits.Load())
	return r, err
}

// e2eWebhooks has a simulator deliver webhooks at o.WebhookRate for
// o.WebhookFor to the worker's receiver, waits until every delivery is
// answered and every WebhookBatch it started has closed, and measures
// the batches (their histories summed) and the rates.
func e2eWebhooks(ctx context.Context, tsrv *testsuite.DevServer, name string, o e2eOptions, logs io.Writer, logger *slog.Logger) (phaseResult, error) {
	port, err := devstack.FreePort()
	if err != nil {
		return phaseResult{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	const secret = "whsec-ktbench"
	simCfg := ktsim.DefaultConfig()
	simCfg.HistoryEvents = 0
	simCfg.Webhooks = []ktsim.Webhook{{URL: "http://" + addr, Secret: secret, Subscription: "all"}}
	sim, simURL, stopSim, err := serveSim(simCfg)
	if err != nil {
		return phaseResult{}, err
	}
	defer stopSim()
	w, err := startE2EWorker(ctx, tsrv, name, map[string]string{"KEEPTRUSTS_BASE_URL": simURL, "KEEPTRUSTS_API_TOKEN": simCfg.Token,
		"KTPIPE_WEBHOOK_ADDR": addr, "KEEPTRUSTS_WEBHOOK_SECRET": secret, "KTPIPE_WEBHOOK_BATCH": o.WebhookWindow.String(),
		"KTPIPE_WEBHOOK_SHARED_SIGNALS": fmt.Sprint(o.SharedSignals)}, o, logs, logger)
	if err != nil {
		return phaseResult{}, err
	}
	defer w.stop()
	ctx, cancel := context.WithTimeout(ctx, e2ePhaseTimeout)
	defer cancel()

	// Each Ingest is one delivery, sent by the simulator in its own
	// goroutine. Each tick sends what is due by then: the ticker drops
	// ticks a loaded machine cannot keep up with, and one delivery a tick
	// offered 169 a second of 200. The offered rate is still counted,
	// not assumed.
	start := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.WebhookRate))
	sent := 0
	for elapsed := time.Duration(0); elapsed < o.WebhookFor; elapsed = time.Since(start) {
		select {
		case <-ctx.Done():
			tick.Stop()
			return phaseResult{}, ctx.Err()
		case <-tick.C:
		}
		for due := int(min(time.Since(start), o.WebhookFor).Seconds() * o.WebhookRate); sent < due; sent++ {
			sim.Ingest(o.WebhookEvents, 0)
		}
	}
	tick.Stop()
	sending := time.Since(start)
	offered := float64(sent) / sending.Seconds()
	acceptedWhileSending := float64(sim.WebhookStats().Delivered) / sending.Seconds()
	var st ktsim.WebhookStats
	for st = sim.WebhookStats(); st.InFlight > 0; st = sim.WebhookStats() {
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return phaseResult{}, fmt.Errorf("deliveries still in flight: %+v: %w", st, err)
		}
	}

	want := st.Delivered * int64(o.WebhookEvents)
	query := fmt.Sprintf("TaskQueue = '%s' AND WorkflowType = 'WebhookBatch'", name)
	var r phaseResult
	for {
		r = phaseResult{}
		var last time.Time
		running := false
		var token []byte
		for {
			resp, err := w.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
			if err != nil {
				return phaseResult{}, err
			}
			for _, e := range resp.Executions {
				if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
					running = true
					continue
				}
				var res workflows.WebhookBatchResult
				if err := w.Client.GetWorkflow(ctx, e.Execution.WorkflowId, e.Execution.RunId).Get(ctx, &res); err != nil {
					return phaseResult{}, fmt.Errorf("webhook batch %s: %w", e.Execution.WorkflowId, err)
				}
				m, err := measureHistory(ctx, w.Client, e.Execution.WorkflowId, e.Execution.RunId)
				if err != nil {
					return phaseResult{}, err
				}
				r.add(m)
				r.Rows += res.Rows
				r.Records += res.Rows + res.Quarantined
				r.Batches++
				last = maxTime(last, e.GetCloseTime().AsTime())
			}
			if token = resp.NextPageToken; len(token) == 0 {
				break
			}
		}
		// Visibility lags the workflows a little: done when nothing runs
		// and every accepted event is accounted for.
		if !running && r.Records >= want {
			r.Span = last.Sub(start)
			break
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return phaseResult{}, fmt.Errorf("webhook batches: %d of %d records loaded: %w", r.Records, want, err)
		}
	}
	// More than want is no error: a delivery the simulator gave up on
	// (it stopped waiting) may have been staged and loaded all the same.
	r.Commits = int(w.commits.Load())
	r.Deliveries, r.DeliveryRetries, r.GaveUp = st.Delivered, st.Retries, st.GaveUp
	r.Offered, r.Accepted = offered, acceptedWhileSending
	return r, nil
}

// add sums another workflow's measured times into r.
func (r *phaseResult) add(m phaseResult) {
	r.Wall += m.Wall
	r.Idle += m.Idle
	r.TimerIdle += m.TimerIdle
	r.QueueIdle += m.QueueIdle
	r.Stage += m.Stage
	r.Commit += m.Commit
	r.Activities += m.Activities
	r.Retried += m.Retried
	r.Signals += m.Signals
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// measureHistory reads the history of a workflow run and of the runs it
// continued as, and measures them.
func measureHistory(ctx context.Context, c client.Client, id, runID string) (phaseResult, error) {
	var all []*historypb.HistoryEvent
	for runID != "" {
		var events []*historypb.HistoryEvent
		it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				return phaseResult{}, fmt.Errorf("history of %s/%s: %w", id, runID, err)
			}
			events = append(events, e)
		}
		all = append(all, events...)
		runID = ""
		if n := len(events); n > 0 {
			if a := events[n-1].GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				runID = a.GetNewExecutionRunId()
			}
		}
	}
	return measureTimeline(readTimeline(all)), nil
}

// interval is a span of time something ran.
type interval struct{ start, end time.Time }

// timeline is what a workflow's history says ran when.
type timeline struct {
	start, end time.Time
	activities map[string][]interval // by activity type
	timers     []interval
	attempts   []int32 // of each activity execution, its last attempt
	signals    int     // WorkflowExecutionSignaled events
	// queued: first attempts from scheduled to started, waiting for a
	// worker's free slot (a later attempt's wait holds its retries too).
	queued []interval
}

// readTimeline reads the run intervals of activities and timers out of
// history events (of one run or of a continue-as-new chain, in order;
// event ids restart with each run). An activity's interval is from its
// ActivityTaskStarted (the start of its last attempt: earlier attempts
// and their backoff are not in history) to its close.
func readTimeline(events []*historypb.HistoryEvent) timeline {
	tl := timeline{activities: map[string][]interval{}}
	types := map[int64]string{}
	at := map[int64]time.Time{}
	for _, e := range events {
		t := e.GetEventTime().AsTime()
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
			if tl.start.IsZero() {
				tl.start = t
			}
			clear(types)
			clear(at)
		}
		tl.end = t
		at[e.GetEventId()] = t
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
			tl.signals++
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			types[e.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil {
			tl.attempts = append(tl.attempts, a.GetAttempt())
			if s, ok := at[a.GetScheduledEventId()]; ok && a.GetAttempt() <= 1 {
				tl.queued = append(tl.queued, interval{s, t})
			}
		}
		var sched, started int64
		switch {
		case e.GetActivityTaskCompletedEventAttributes() != nil:
			a := e.GetActivityTaskCompletedEventAttributes()
			sched, started = a.GetScheduledEventId(), a.GetStartedEventId()
		case e.GetActivityTaskFailedEventAttributes() != nil:
			a := e.GetActivityTaskFailedEventAttributes()
			sched, started = a.GetScheduledEventId(), a.GetStartedEventId()
		case e.GetActivityTaskTimedOutEventAttributes() != nil:
			a := e.GetActivityTaskTimedOutEventAttributes()
			sched, started = a.GetScheduledEventId(), a.GetStartedEventId()
		case e.GetActivityTaskCanceledEventAttributes() != nil:
			a := e.GetActivityTaskCanceledEventAttributes()
			sched, started = a.GetScheduledEventId(), a.GetStartedEventId()
		case e.GetTimerFiredEventAttributes() != nil:
			if s, ok := at[e.GetTimerFiredEventAttributes().GetStartedEventId()]; ok {
				tl.timers = append(tl.timers, interval{s, t})
			}
		case e.GetTimerCanceledEventAttributes() != nil:
			if s, ok := at[e.GetTimerCanceledEventAttributes().GetStartedEventId()]; ok {
				tl.timers = append(tl.timers, interval{s, t})
			}
		}
		if s, ok := at[started]; ok && started != 0 {
			tl.activities[types[sched]] = append(tl.activities[types[sched]], interval{s, t})
		}
	}
	return tl
}

// measureTimeline turns a timeline into the benchmark's figures.
func measureTimeline(tl timeline) phaseResult {
	var acts []interval
	n := 0
	for _, iv := range tl.activities {
		acts = append(acts, iv...)
		n += len(iv)
	}
	busy := covered(tl.start, tl.end, acts)
	withTimers := covered(tl.start, tl.end, append(slices.Clip(acts), tl.timers...))
	withQueued := covered(tl.start, tl.end, append(append(slices.Clip(acts), tl.timers...), tl.queued...))
	r := phaseResult{
		Wall:       tl.end.Sub(tl.start),
		Idle:       tl.end.Sub(tl.start) - busy,
		TimerIdle:  withTimers - busy,
		QueueIdle:  withQueued - withTimers,
		Stage:      covered(tl.start, tl.end, tl.activities[payload.StageChunk]),
		Commit:     covered(tl.start, tl.end, tl.activities[payload.MergeLoad]),
		Activities: n,
		Signals:    tl.signals,
	}
	for _, a := range tl.attempts {
		if a > 1 {
			r.Retried++
		}
	}
	return r
}

// covered is how much of [from, to) the union of spans covers: time two
// overlapping activities run counts once, so the rest is time nothing ran.
func covered(from, to time.Time, spans []interval) time.Duration {
	s := make([]interval, 0, len(spans))
	for _, iv := range spans {
		iv.start, iv.end = maxTime(iv.start, from), minTime(iv.end, to)
		if iv.end.After(iv.start) {
			s = append(s, iv)
		}
	}
	slices.SortFunc(s, func(a, b interval) int { return a.start.Compare(b.start) })
	var total time.Duration
	var cur interval
	for i, iv := range s {
		switch {
		case i == 0:
			cur = iv
		case !iv.start.After(cur.end): // overlaps or touches: extend
			cur.end = maxTime(cur.end, iv.end)
		default:
			total += cur.end.Sub(cur.start)
			cur = iv
		}
	}
	if len(s) > 0 {
		total += cur.end.Sub(cur.start)
	}
	return total
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// middle is the median of xs: the mean of the middle two of an even count.
func middle(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

// e2eColumns are the table's columns, figures of one run.
var e2eColumns = []struct {
	head, format string
	value        func(phaseResult) float64
}{
	{"rows", "%9.0f", func(r phaseResult) float64 { return float64(r.Rows) }},
	{"wall s", "%8.1f", func(r phaseResult) float64 { return r.Wall.Seconds() }},
	{"idle %", "%7.1f", func(r phaseResult) float64 { return share(r.Idle, r.Wall) }},
	{"timers %", "%8.1f", func(r phaseResult) float64 { return share(r.TimerIdle, r.Wall) }},
	{"queued %", "%8.1f", func(r phaseResult) float64 { return share(r.QueueIdle, r.Wall) }},
	{"rest %", "%6.1f", func(r phaseResult) float64 { return share(r.Idle-r.TimerIdle-r.QueueIdle, r.Wall) }},
	{"stage s", "%8.1f", func(r phaseResult) float64 { return r.Stage.Seconds() }},
	{"stage r/s", "%9.0f", func(r phaseResult) float64 { return rate(r.Rows, r.Stage) }},
	{"commit s", "%8.1f", func(r phaseResult) float64 { return r.Commit.Seconds() }},
	{"commit r/s", "%10.0f", func(r phaseResult) float64 { return rate(r.Rows, r.Commit) }},
	{"commits", "%7.0f", func(r phaseResult) float64 { return float64(r.Commits) }},
	{"acts", "%5.0f", func(r phaseResult) float64 { return float64(r.Activities) }},
	{"retried", "%7.0f", func(r phaseResult) float64 { return float64(r.Retried) }},
}

func share(part, whole time.Duration) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * part.Seconds() / whole.Seconds()
}

func rate(rows int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(rows) / d.Seconds()
}

// printE2E prints each run and, per column, the median of the runs.
func printE2E(out io.Writer, o e2eOptions, results map[string][]phaseResult, paths []string) {
	fmt.Fprintf(out, "\n%-8s %4s", "path", "run")
	for _, c := range e2eColumns {
		fmt.Fprintf(out, " %*s", len(fmt.Sprintf(c.format, 0.0)), c.head)
	}
	fmt.Fprintln(out)
	row := func(path, run string, value func(int) float64) {
		fmt.Fprintf(out, "%-8s %4s", path, run)
		for i, c := range e2eColumns {
			fmt.Fprintf(out, " "+c.format, value(i))
		}
		fmt.Fprintln(out)
	}
	for _, path := range paths {
		rs := results[path]
		for i, r := range rs {
			row(path, fmt.Sprint(i+1), func(c int) float64 { return e2eColumns[c].value(r) })
		}
		row(path, "med", func(c int) float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, e2eColumns[c].value(r))
			}
			return middle(xs)
		})
	}
	fmt.Fprintf(out, `
idle %%: share of the workflow's wall time (start to close, every continue-as-new run) in which no
  activity ran; timers %%: the part of it in which a workflow timer ran (export status polls, a
  webhook window); queued %%: of the rest, an activity waited for a free slot of the worker
  (scheduled, not yet started); rest %%: the remainder, Temporal's overhead (task dispatch,
  workflow tasks, history) plus the failed attempts of retried activities (only an activity's
  last attempt is in the history). stage s, commit s: union of the StageChunk, MergeLoad run
  intervals; r/s: rows loaded / that time. commits: CommitBatch transactions started. acts:
  activity executions; retried: of them, those that ended on a later attempt. Median of %d runs
  (per column), each on a fresh emulator, dataset and worker.
`, o.Runs)
	if rs, ok := results["webhooks"]; ok {
		med := func(f func(phaseResult) float64) float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, f(r))
			}
			return middle(xs)
		}
		fmt.Fprintf(out, "webhooks (medians): %.0f deliveries/s offered for %s, %d events each; %.0f/s accepted while offered "+
			"(in all %.0f accepted, %.0f retries, %.0f given up by the simulator after 8 attempts);\n"+
			"  %.0f records loaded (rows and quarantined), %.0f rows/s by %.0f WebhookBatch workflows (%s windows), first delivery sent to last batch closed;\n"+
			"  %.0f signals to the batches (%.1f accepted deliveries a signal; a signal also carries the keys of deliveries refused after staging)\n",
			med(func(r phaseResult) float64 { return r.Offered }), o.WebhookFor, o.WebhookEvents,
			med(func(r phaseResult) float64 { return r.Accepted }),
			med(func(r phaseResult) float64 { return float64(r.Deliveries) }),
			med(func(r phaseResult) float64 { return float64(r.DeliveryRetries) }),
			med(func(r phaseResult) float64 { return float64(r.GaveUp) }),
			med(func(r phaseResult) float64 { return float64(r.Records) }),
			med(func(r phaseResult) float64 { return rate(r.Rows, r.Span) }),
			med(func(r phaseResult) float64 { return float64(r.Batches) }), o.WebhookWindow,
			med(func(r phaseResult) float64 { return float64(r.Signals) }),
			med(func(r phaseResult) float64 { return float64(r.Deliveries) / float64(max(r.Signals, 1)) }))
	}
}
