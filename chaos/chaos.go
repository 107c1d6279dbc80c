// Package chaos is ktpipe's chaos soak: it runs the whole stack on this
// machine (the Temporal dev server with a database file, the BigQuery
// emulator, the Keeptrusts simulator, the worker as an OS process) with a
// backfill, scheduled pulls and webhook deliveries at once, and meanwhile
// SIGKILLs the worker at random moments (restarting it at once), restarts
// the dev server and the API, and makes the API fail for a while: 500s,
// then hangs, then 429 storms. At the end it holds the warehouse against
// the simulator's ground truth, lists any workflow left open, prints
// what `ktpipe status` says, and how long the pipeline took to recover
// from each kill.
package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/workflows"
)

// Options shape a soak. DefaultOptions are the full soak.
type Options struct {
	Dir string // working directory: dev server database, staging, logs (created)
	// WorkerCommand is the argv of a worker process (the worker command,
	// or ktchaos itself); the soak adds the worker's environment.
	WorkerCommand []string
	Seed          uint64 // the chaos plan and the simulated data (0: from the clock)

	Events   int     // events in the simulated history
	Days     int     // days of history, one backfill window each
	LiveRate float64 // new events per second during the soak, pushed by webhooks and pulled

	Kills            int           // worker SIGKILLs, each followed at once by a new worker
	TemporalRestarts int           // dev server restarts (SIGINT, same database file and port)
	SimRestarts      int           // API restarts (same port, same data)
	SimDown          time.Duration // how long a restarted API refuses connections
	FaultPhase       time.Duration // each of 500s, hangs, 429 storms lasts this long, or up to 3× while no request met it (0: no fault phases)
	Hang             time.Duration // how long a hanging response stalls before the API cuts it

	MinGap, MaxGap time.Duration // random pause before each chaos action
	// RecoveryBound is how long the soak waits after a kill for the new
	// worker to poll and for the interrupted activities to run again,
	// before it goes on (the wait is reported as not recovered).
	RecoveryBound time.Duration

	PullInterval time.Duration // the schedule's interval
	WebhookBatch time.Duration // KTPIPE_WEBHOOK_BATCH
	ChunkRows    int           // KTPIPE_CHUNK_ROWS
	// Tuning of the backfill and the pulls; zero is what `ktpipe
	// backfill` and the schedule use in production, which is what the
	// soak measures. The test shortens it to finish sooner.
	Tuning workflows.Tuning

	Drain   time.Duration // bound on the end: backfill, deliveries, last pull, every workflow closed
	Timeout time.Duration // bound on the whole soak

	Out io.Writer // the running account and the report
}

// DefaultOptions are the full soak of the issue: 20 kills, a dev server
// restart, an API restart, and 20 s each of 500s, hangs and 429 storms.
func DefaultOptions() Options {
	return Options{
		Dir: ".ktpipe/chaos", Events: 20000, Days: 7, LiveRate: 2,
		Kills: 20, TemporalRestarts: 1, SimRestarts: 1, SimDown: 5 * time.Second,
		FaultPhase: 20 * time.Second, Hang: 2 * time.Minute,
		MinGap: time.Second, MaxGap: 10 * time.Second, RecoveryBound: 3 * time.Minute,
		// Every pull and every webhook batch is a load of its own; the
		// emulator runs one statement at a time and a load takes ~10 of
		// them, so shorter intervals queue loads faster than it can run
		// them while kills waste work, and the soak would measure the
		// queue. Webhook batches come at the shipped default
		// (KTPIPE_WEBHOOK_BATCH=1m), and pulls twice as often: the
		// schedule skips a pull while one runs, so pulls never queue.
		PullInterval: 30 * time.Second, WebhookBatch: time.Minute, ChunkRows: 1000,
		Drain: 15 * time.Minute, Timeout: 2 * time.Hour, Out: os.Stdout,
	}
}

func (o Options) validate() error {
	switch {
	case len(o.WorkerCommand) == 0:
		return errors.New("chaos: WorkerCommand is empty")
	case o.Dir == "":
		return errors.New("chaos: Dir is empty")
	case o.Events <= 0 || o.Days <= 0:
		return fmt.Errorf("chaos: Events (%d) and Days (%d) must be > 0", o.Events, o.Days)
	case o.Kills < 0 || o.TemporalRestarts < 0 || o.SimRestarts < 0:
		return errors.New("chaos: Kills, TemporalRestarts and SimRestarts must be >= 0")
	case o.MinGap < 0 || o.MaxGap < o.MinGap:
		return fmt.Errorf("chaos: want 0 <= MinGap (%s) <= MaxGap (%s)", o.MinGap, o.MaxGap)
	case o.RecoveryBound <= 0 || o.Drain <= 0 || o.Timeout <= 0:
		return errors.New("chaos: RecoveryBound, Drain and Timeout must be > 0")
	case o.PullInterval < time.Second || o.WebhookBatch < time.Second:
		return errors.New("chaos: PullInterval and WebhookBatch must be at least 1s")
	case o.ChunkRows <= 0:
		return errors.New("chaos: ChunkRows must be > 0")
	}
	return nil
}

// Action kinds of the chaos plan.
const (
	KindKill            = "kill"
	KindTemporalRestart = "temporal-restart"
	KindAPIRestart      = "api-restart"
	KindFaults          = "faults"
)

// Action is one thing the soak did to the stack, and how the pipeline
// took it.
type Action struct {
	Kind   string
	At     time.Time
	Detail string
	Err    string // the soak could not do it, or the stack did not come back
	// Down is how long the service was away (restarts) or the faults
	// lasted.
	Down time.Duration
	// Up: kill or dev server restart → the worker polls its task queue.
	Up time.Duration
	// Resumed: kill → every activity the killed worker was running has a
	// new attempt running (or finished). Interrupted lists them; Stalled
	// those that did not run again within RecoveryBound.
	Resumed     time.Duration
	Interrupted []string
	Stalled     []string
	// Progress: the disruption's start (a kill, a restart) or end (the
	// faults) → the first activity completion after it, from histories.
	Progress   time.Duration
	progressOK bool
	from       time.Time
}

// Report is everything the soak saw.
type Report struct {
	Seed        uint64
	Options     Options
	Started     time.Time
	Elapsed     time.Duration
	Stack       string
	Actions     []Action
	Backfill    workflows.BackfillResult
	BackfillErr string
	FinalPull   workflows.IncrementalPullResult
	PullErr     string
	API         ktsim.RequestStats
	Webhooks    ktsim.WebhookStats
	Comparison  Comparison
	Open        []control.WorkflowSummary // still open after the drain: stuck
	Failed      []control.WorkflowSummary
	Workflows   map[string]map[string]int // workflow type → status → runs
	Retries     map[string]int            // activity type → retried attempts
	Status      string                    // what `ktpipe status` printed
	Err         string                    // the soak itself stopped early
}

// Problems says why the soak failed; none means it passed.
func (r *Report) Problems() []string {
	var out []string
	if r.Err != "" {
		out = append(out, "soak stopped early: "+r.Err)
	}
	out = append(out, r.Comparison.Problems()...)
	if len(r.Open) > 0 {
		n := map[string]int{}
		var ids []string
		for _, w := range r.Open {
			n[w.Type]++
			if len(ids) < 5 {
				ids = append(ids, w.ID)
			}
		}
		out = append(out, fmt.Sprintf("%d workflows still open after the drain (stuck): %v, e.g. %s", len(r.Open), n, strings.Join(ids, ", ")))
	}
	if r.BackfillErr != "" {
		out = append(out, "backfill: "+r.BackfillErr)
	}
	if r.PullErr != "" {
		out = append(out, "final pull: "+r.PullErr)
	}
	for _, a := range r.Actions {
		if a.Err != "" {
			out = append(out, fmt.Sprintf("%s at %s: %s", a.Kind, a.At.Format("15:04:05"), a.Err))
		}
	}
	return out
}

// Run runs a soak. Its error says the soak could not run (a service
// would not start); whether the pipeline passed is the report's
// Problems.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	r := &Report{Seed: o.Seed, Options: o, Started: time.Now()}
	defer func() { r.Elapsed = time.Since(r.Started) }()
	say := func(format string, args ...any) {
		fmt.Fprintf(o.Out, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.0")}, args...)...)
	}
	say("chaos soak, seed %d, in %s: %d kills, %d dev server restarts, %d API restarts, faults %s each",
		o.Seed, o.Dir, o.Kills, o.TemporalRestarts, o.SimRestarts, o.FaultPhase)

	s, err := startStack(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	pid, err := s.startWorker()
	if err != nil {
		return nil, err
	}
	if _, ok := s.waitWorkerUp(ctx, pid, 5*time.Minute); !ok {
		return nil, fmt.Errorf("the worker (pid %d) did not poll within 5m; see %s/worker-01.log", pid, o.Dir)
	}
	r.Stack = fmt.Sprintf("dev server %s (db %s), emulator %s, API http://%s, worker pid %d (webhooks on %s)",
		s.temporalAddr, s.dbFile, s.emu.Endpoint, s.simAddr, pid, s.envMap["KTPIPE_WEBHOOK_ADDR"])
	say("stack up: %s", r.Stack)

	bf, err := s.startLoad(ctx)
	if err != nil {
		return nil, err
	}
	stopIngest := s.ingest(o.LiveRate)
	say("load: backfill %s (%d days, one export a day), pulls every %s, %.0f new events/s pushed by webhooks (batches of %s)",
		bf.GetID(), o.Days+2, o.PullInterval, o.LiveRate, o.WebhookBatch)

	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	kills := 0
	for _, kind := range plan(rng, o) {
		gap := o.MinGap + time.Duration(rng.Int64N(int64(o.MaxGap-o.MinGap)+1))
		if !sleep(ctx, gap) {
			break
		}
		var a Action
		switch kind {
		case KindKill:
			kills++
			a = s.kill(ctx, o, kills)
		case KindTemporalRestart:
			a = s.temporalRestart(ctx, o)
		case KindAPIRestart:
			a = s.apiRestart(o)
		case KindFaults:
			a = s.faults(ctx, o, say)
		}
		r.Actions = append(r.Actions, a)
		say("%s", a.line())
	}
	stopIngest()
	s.sim.SetFaults(ktsim.Faults{})
	if ctx.Err() != nil {
		r.Err = fmt.Sprintf("the soak's %s ran out during the chaos", o.Timeout)
	}

	say("drain: ingestion stopped, faults off; waiting for the backfill, the deliveries, a last pull and every workflow to close (at most %s)", o.Drain)
	s.drain(ctx, o, r, bf, say)
	s.verdict(ctx, r)
	r.Elapsed = time.Since(r.Started)
	r.Print(o.Out)
	return r, nil
}

// plan is the chaos in a random order: the kills, the restarts and one
// block of fault phases.
func plan(rng *rand.Rand, o Options) []string {
	var p []string
	for range o.Kills {
		p = append(p, KindKill)
	}
	for range o.TemporalRestarts {
		p = append(p, KindTemporalRestart)
	}
	for range o.SimRestarts {
		p = append(p, KindAPIRestart)
	}
	if o.FaultPhase > 0 {
		p = append(p, KindFaults)
	}
	rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// startLoad applies the schedule and starts the backfill of the whole
// history, as an operator would with `ktpipe schedule apply` and
// `ktpipe backfill`.
func (s *stack) startLoad(ctx context.Context) (client.WorkflowRun, error) {
	o := s.o
	pull := workflows.IncrementalPullInput{Start: "24h", PageSize: 500, PagesPerBatch: 4, BatchesPerRun: 5,
		LateWindow: time.Hour, Tuning: o.Tuning}
	// A short catch-up window: runs missed while the dev server was away
	// are not made up one by one.
	if _, err := s.ctl.ApplySchedule(ctx, control.ScheduleSpec{Interval: o.PullInterval, CatchupWindow: time.Minute, Pull: pull}); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	since := now.Add(-time.Duration(o.Days+1) * 24 * time.Hour).Truncate(24 * time.Hour)
	until := now.Truncate(time.Hour).Add(time.Hour)
	return s.ctl.StartBackfill(ctx, workflows.BackfillInput{Since: since, Until: until, Window: 24 * time.Hour,
		Parallelism: 2, Format: "ndjson", Gzip: true, Tuning: o.Tuning})
}

// ingest makes rate new events a second arrive at the API (a fifth of
// them late) until stop is called; the simulator pushes each batch to
// the worker's webhook receiver.
func (s *stack) ingest(rate float64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		carry := 0.0
		for {
			select {
			case <-done:
				return
			case <-t.C:
				carry += rate
				if n := int(carry); n > 0 {
					carry -= float64(n)
					s.sim.Ingest(n, 0.2)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// kill SIGKILLs the worker at a moment it runs activities (waiting at
// most 15 s for one), starts a new one at once, and measures until it
// polls and until the interrupted activities run again.
func (s *stack) kill(ctx context.Context, o Options, n int) Action {
	for deadline := time.Now().Add(15 * time.Second); ctx.Err() == nil; time.Sleep(300 * time.Millisecond) {
		if acts, _ := s.runningActivities(ctx, ""); len(acts) > 0 || time.Now().After(deadline) {
			break
		}
	}
	old := s.worker.Process.Pid
	a := Action{Kind: KindKill, At: time.Now()}
	a.from = a.At
	if err := s.killWorker(); err != nil {
		a.Err = err.Error()
		return a
	}
	acts, err := s.runningActivities(ctx, fmt.Sprintf("%d@", old))
	if err != nil {
		a.Err = err.Error()
		return a
	}
	pid, err := s.startWorker()
	if err != nil {
		a.Err = err.Error()
		return a
	}
	a.Detail = fmt.Sprintf("%d/%d: worker %d killed running %s; worker %d started", n, o.Kills, old, describe(acts), pid)
	for _, x := range acts {
		a.Interrupted = append(a.Interrupted, x.typ)
	}
	up, ok := s.waitWorkerUp(ctx, pid, o.RecoveryBound)
	a.Up = up.Sub(a.At)
	if !ok {
		a.Err = fmt.Sprintf("worker %d did not poll within %s", pid, o.RecoveryBound)
		return a
	}
	resumed, stalled := s.waitResumed(ctx, acts, a.At, o.RecoveryBound)
	a.Resumed = resumed
	for _, x := range stalled {
		a.Stalled = append(a.Stalled, x.typ+" of "+x.workflowID)
	}
	return a
}

// temporalRestart restarts the dev server and waits for the worker to
// poll again.
func (s *stack) temporalRestart(ctx context.Context, o Options) Action {
	a := Action{Kind: KindTemporalRestart, At: time.Now(), Detail: "dev server stopped (SIGINT) and started on the same port and database file"}
	a.from = a.At
	down, err := s.restartTemporal(ctx)
	a.Down = down
	if err != nil {
		a.Err = err.Error()
		return a
	}
	up, ok := s.waitWorkerUp(ctx, s.worker.Process.Pid, o.RecoveryBound)
	a.Up = up.Sub(a.At)
	if !ok {
		a.Err = fmt.Sprintf("the worker did not poll again within %s of the restart", o.RecoveryBound)
	}
	return a
}

// apiRestart restarts the simulator's HTTP server.
func (s *stack) apiRestart(o Options) Action {
	a := Action{Kind: KindAPIRestart, At: time.Now(),
		Detail: fmt.Sprintf("API stopped (every connection cut), refusing connections for %s, then served again on the same port with the same data", o.SimDown)}
	a.from = a.At
	start := time.Now()
	if err := s.restartSim(o.SimDown); err != nil {
		a.Err = err.Error()
	}
	a.Down = time.Since(start)
	return a
}

// maxFaultPhases is how many FaultPhase lengths a fault phase may last
// while no request has met its fault.
const maxFaultPhases = 3

// faults runs the fault phases: 500s, then hangs, then 429 storms, each
// on top of the background noise and for FaultPhase, or longer (up to
// maxFaultPhases × FaultPhase) until a request met its fault.
func (s *stack) faults(ctx context.Context, o Options, say func(string, ...any)) Action {
	a := Action{Kind: KindFaults, At: time.Now()}
	phases := []struct {
		name, what string
		f          ktsim.Faults
	}{
		{"500s", "half of all requests answered 500", ktsim.Faults{ErrorRate: 0.5}},
		{"hangs", fmt.Sprintf("a third of all responses stall mid-body for up to %s", o.Hang), ktsim.Faults{HangRate: 0.33, Hang: o.Hang}},
		{"429s", "9 of 10 requests answered 429 with Retry-After 2", ktsim.Faults{RateLimitRate: 0.9, RetryAfter: 2}},
	}
	var parts []string
	for _, p := range phases {
		f := p.f
		f.DropRate, f.ResendRate = baseFaults.DropRate, baseFaults.ResendRate
		before := s.sim.Stats()
		s.sim.SetFaults(f)
		// A pull now, so the phase sees the API requests of one: the
		// schedule's own may all fall outside its few seconds. Beside the
		// phase, whose length does not wait for it; a pull still running
		// (the schedule skips overlaps) makes the trigger follow that one.
		// A phase that faulted no request (a pull of a page or two, each
		// lucky) goes on with another pull, up to maxFaultPhases in all:
		// a soak whose faults met nothing proves nothing of them.
		triggered := make(chan error, maxFaultPhases)
		trigger := func() {
			go func() {
				_, err := s.ctl.TriggerSchedule(ctx)
				triggered <- err
			}()
		}
		start := time.Now()
		var d ktsim.RequestStats
		for n := 1; ; n++ {
			trigger()
			sleep(ctx, o.FaultPhase)
			d = diff(s.sim.Stats(), before)
			if d.Errors+d.Hung+d.RateLimited > 0 || n == maxFaultPhases || ctx.Err() != nil {
				break
			}
		}
		// The first trigger's answer: the later ones only repeat it.
		pull := "a pull triggered"
		select {
		case err := <-triggered:
			if err != nil {
				pull = "no pull triggered: " + err.Error()
			}
		default:
			pull = "a pull being triggered"
		}
		say("  faults: %s for %s (%s; %s): %d requests, %d answered 500, %d hung, %d answered 429",
			p.name, time.Since(start).Round(time.Second), p.what, pull, d.Requests, d.Errors, d.Hung, d.RateLimited)
		parts = append(parts, fmt.Sprintf("%s %d of %d", p.name, d.Errors+d.Hung+d.RateLimited, d.Requests))
	}
	s.sim.SetFaults(baseFaults)
	a.Down = time.Since(a.At)
	a.from = time.Now()
	a.Detail = fmt.Sprintf("500s, then hangs, then 429 storms, %s each, longer (up to %d×) until a request met the fault (faulted requests: %s)", o.FaultPhase, maxFaultPhases, strings.Join(parts, ", "))
	return a
}

func diff(a, b ktsim.RequestStats) ktsim.RequestStats {
	return ktsim.RequestStats{Requests: a.Requests - b.Requests, Errors: a.Errors - b.Errors, RateLimited: a.RateLimited - b.RateLimited,
		Hung: a.Hung - b.Hung, Slowed: a.Slowed - b.Slowed, Dropped: a.Dropped - b.Dropped}
}

// drain lets everything finish, within Drain: the backfill, the
// simulator's webhook deliveries, a last pull (the schedule paused so
// none starts after it), then every workflow. What is still open then is
// stuck.
func (s *stack) drain(ctx context.Context, o Options, r *Report, bf client.WorkflowRun, say func(string, ...any)) {
	ctx, cancel := context.WithTimeout(ctx, o.Drain)
	defer cancel()
	if err := s.tc.GetWorkflow(ctx, bf.GetID(), "").Get(ctx, &r.Backfill); err != nil {
		r.BackfillErr = err.Error()
	}
	say("  backfill: %d windows, %d loaded, %d rows, %d quarantined %s", r.Backfill.Windows, r.Backfill.Loaded, r.Backfill.Rows, r.Backfill.Quarantined, r.BackfillErr)
	for s.sim.WebhookStats().InFlight > 0 && sleep(ctx, 500*time.Millisecond) {
	}
	r.Webhooks = s.sim.WebhookStats()
	say("  webhook deliveries: %d made, %d delivered, %d gave up, %d retried attempts, %d still trying",
		r.Webhooks.Deliveries, r.Webhooks.Delivered, r.Webhooks.GaveUp, r.Webhooks.Retries, r.Webhooks.InFlight)

	if err := s.ctl.PauseSchedule(ctx, true, "chaos soak: last pull"); err != nil {
		r.PullErr = err.Error()
	}
	for ctx.Err() == nil {
		running, err := s.ctl.ListWorkflows(ctx, "Running", 200)
		if err == nil && !hasType(running, "IncrementalPull") {
			break
		}
		sleep(ctx, time.Second)
	}
	if r.PullErr == "" {
		id, err := s.ctl.TriggerSchedule(ctx)
		if err == nil {
			err = s.tc.GetWorkflow(ctx, id, "").Get(ctx, &r.FinalPull)
		}
		if err != nil {
			r.PullErr = err.Error()
		}
		say("  last pull %s: %d batches, %d rows, %d quarantined %s", id, r.FinalPull.Batches, r.FinalPull.Rows, r.FinalPull.Quarantined, r.PullErr)
	}
	for {
		running, err := s.ctl.ListWorkflows(context.WithoutCancel(ctx), "Running", 200)
		if err == nil && len(running) == 0 {
			r.Open = nil
			break
		}
		if err == nil {
			r.Open = running
		}
		if !sleep(ctx, time.Second) {
			break
		}
	}
	say("  %d workflows open", len(r.Open))
}

func hasType(wfs []control.WorkflowSummary, typ string) bool {
	for _, w := range wfs {
		if w.Type == typ {
			return true
		}
	}
	return false
}

// verdict compares with the truth, collects failed workflows, the
// status, and what the histories say about progress.
func (s *stack) verdict(ctx context.Context, r *Report) {
	// The report is worth finishing even after the soak's timeout, within
	// a bound of its own: a stuck emulator must not hang the soak.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), verdictTimeout)
	defer cancel()
	r.API = s.sim.Stats()
	truth := s.sim.Truth(time.Time{}, time.Time{})
	fact, err := s.wh.FactIDs(ctx)
	if err == nil {
		var q map[string][]string
		if q, err = s.wh.QuarantinedIDs(ctx); err == nil {
			r.Comparison = Compare(truth, fact, q)
		}
	}
	if err != nil {
		r.Err = fmt.Sprintf("read the warehouse: %v", err)
	}
	if r.Failed, err = s.ctl.ListWorkflows(ctx, "Failed", 200); err != nil {
		r.Err = err.Error()
	}
	// One audit at the end, as the schedule would run it, so the status
	// below reports lag, duplicates and completeness from the warehouse.
	if err := s.audit(ctx); err != nil {
		r.Err = err.Error()
	}
	r.Status = s.status(ctx)
	h, err := s.readHistories(ctx)
	if err != nil {
		r.Err = err.Error()
	}
	r.Workflows, r.Retries = h.workflows, h.retries
	for i := range r.Actions {
		a := &r.Actions[i]
		a.Progress, a.progressOK = h.progressAfter(a.from)
	}
}

// audit runs the Audit workflow once over the soak's days (bounded to
// 5 min).
func (s *stack) audit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	run, err := s.ctl.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "ktpipe-chaos-audit", TaskQueue: s.ctl.TaskQueue},
		workflows.Audit, workflows.AuditInput{Interval: time.Hour, Days: s.o.Days + 2, Recount: true, Tuning: s.o.Tuning})
	if err != nil {
		return fmt.Errorf("start the final audit: %w", err)
	}
	if err := run.Get(ctx, nil); err != nil {
		return fmt.Errorf("final audit: %w", err)
	}
	return nil
}

// verdictTimeout bounds the end report: the truth comparison, a final
// audit (itself 5 min at most), status and the histories.
const verdictTimeout = 10 * time.Minute

// status is what `ktpipe status` prints for this stack.
func (s *stack) status(ctx context.Context) string {
	var out bytes.Buffer
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cli := &control.CLI{Env: envconfig.MapLookuper(s.envMap), Stdout: &out, Stderr: &out,
		Dial: func(cfg config.Temporal) (client.Client, error) { return app.DialTemporal(cfg, quiet) }}
	cli.Run(ctx, []string{"status"})
	return out.String()
}
