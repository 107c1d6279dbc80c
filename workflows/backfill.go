package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// BackfillInput is a date range to load through exports.
type BackfillInput struct {
	Since       time.Time     `json:"since"`
	Until       time.Time     `json:"until"`
	Window      time.Duration `json:"window"`                // one export per window (default 24h)
	Parallelism int           `json:"parallelism,omitempty"` // windows in flight (default 2)
	Format      string        `json:"format,omitempty"`      // json, ndjson or csv (default ndjson)
	Gzip        bool          `json:"gzip,omitempty"`
	Tuning      Tuning        `json:"tuning,omitzero"`
	// MaxWindowsPerRun bounds the windows one run starts before it
	// continues as new (default 500), so history stays small for any
	// range: two years of hourly windows is 17,520 children.
	MaxWindowsPerRun int `json:"maxWindowsPerRun,omitempty"`

	// Set by the workflow itself when it continues as new: the windows
	// before Since, and the first maxFailuresKept of those that failed
	// (Done.Failed counts them all).
	Done   BackfillResult `json:"done,omitzero"`
	Failed []string       `json:"failed,omitempty"`
}

// BackfillResult sums up the windows.
type BackfillResult struct {
	Windows     int   `json:"windows"`
	Loaded      int   `json:"loaded"`
	Skipped     int   `json:"skipped"` // windows an earlier run of this backfill loaded (counted with its rows)
	Failed      int   `json:"failed"`
	Rows        int64 `json:"rows"`
	Quarantined int64 `json:"quarantined"`
}

// BackfillProgress is what the progress query returns.
type BackfillProgress struct {
	BackfillResult
	Running []string `json:"running"`
	// Failures are the first maxFailuresKept failure messages;
	// BackfillResult.Failed counts them all. (Not named Failed: in JSON
	// the outer field would hide the count.)
	Failures []string `json:"failures"`
}

// maxFailuresKept bounds the failure messages a backfill keeps (and
// carries through continue-as-new): two years of hourly windows failing
// would otherwise be 17,520 messages in every new run's input.
const maxFailuresKept = 20

// WindowWorkflowID is the id of a backfill window's ExportLoad child.
func WindowWorkflowID(backfillID string, since, until time.Time) string {
	return fmt.Sprintf("%s/window-%s-%s", backfillID, since.UTC().Format("20060102T150405Z"), until.UTC().Format("20060102T150405Z"))
}

// Backfill splits [Since, Until) into windows and loads each through an
// ExportLoad child, at most Parallelism at a time. Children have
// deterministic ids and refuse to run again once completed, so starting
// the same backfill again (or continuing a failed one) loads only the
// windows that have not been loaded.
func Backfill(ctx workflow.Context, in BackfillInput) (BackfillResult, error) {
	s := &backfill{in: in}
	if err := s.setup(ctx); err != nil {
		return BackfillResult{}, err
	}
	return s.run(ctx)
}

type backfill struct {
	in       BackfillInput
	progress BackfillProgress
	summary  string // the whole range, also after continue-as-new
}

func (s *backfill) setup(ctx workflow.Context) error {
	if err := checkInput(ctx, s.in.Check); err != nil {
		return err
	}
	if s.in.Window <= 0 {
		s.in.Window = 24 * time.Hour
	}
	if s.in.Parallelism <= 0 {
		s.in.Parallelism = 2
	}
	if s.in.MaxWindowsPerRun <= 0 {
		s.in.MaxWindowsPerRun = 500
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (BackfillProgress, error) { return s.progress, nil }); err != nil {
		return err
	}
	// The whole range, also after continue-as-new moved Since on (every
	// window before it was a full Window long).
	rangeStart := s.in.Since.Add(-time.Duration(s.in.Done.Windows) * s.in.Window)
	whole := s.in
	whole.Since = rangeStart
	s.summary = BackfillSummary(whole)
	return workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet("backfill"),
		WindowStartKey.ValueSet(rangeStart), WindowEndKey.ValueSet(s.in.Until))
}

type window struct{ since, until time.Time }

func (s *backfill) windows() []window {
	var ws []window
	for t := s.in.Since; t.Before(s.in.Until); t = t.Add(s.in.Window) {
		end := t.Add(s.in.Window)
		if end.After(s.in.Until) {
			end = s.in.Until
		}
		ws = append(ws, window{t, end})
	}
	return ws
}

func (s *backfill) run(ctx workflow.Context) (BackfillResult, error) {
	ws := s.windows()
	s.progress.BackfillResult = s.in.Done
	s.progress.Windows = s.in.Done.Windows + len(ws)
	s.progress.Failures = s.in.Failed
	if s.progress.BackfillResult.Failed < len(s.in.Failed) { // carried by a run before Failed was counted
		s.progress.BackfillResult.Failed = len(s.in.Failed)
	}
	var rest []window
	if len(ws) > s.in.MaxWindowsPerRun {
		ws, rest = ws[:s.in.MaxWindowsPerRun], ws[s.in.MaxWindowsPerRun:]
	}
	// Version 1 collects children as they finish (a Selector), and waits
	// for a window whose child id is taken by a running workflow instead
	// of counting it as done. Runs recorded before it replay version 0.
	if workflow.GetVersion(ctx, "backfill-selector", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		s.runInOrder(ctx, ws)
	} else {
		s.runAsTheyFinish(ctx, ws)
	}
	if len(rest) > 0 {
		next := s.in
		next.Since = rest[0].since
		next.Done = s.progress.BackfillResult
		next.Done.Windows = s.in.Done.Windows + len(ws)
		next.Failed = s.progress.Failures
		return BackfillResult{}, workflow.NewContinueAsNewError(ctx, Backfill, next)
	}
	if n := s.progress.BackfillResult.Failed; n > 0 {
		msg := fmt.Sprintf("%d of %d windows failed (start the same backfill again to retry them): %s", n, s.progress.Windows, strings.Join(s.progress.Failures, "; "))
		if n > len(s.progress.Failures) {
			msg += fmt.Sprintf("; and %d more", n-len(s.progress.Failures))
		}
		return s.progress.BackfillResult, temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeBackfillFailed, nil)
	}
	return s.progress.BackfillResult, nil
}

// startChild starts the ExportLoad child of window w.
func (s *backfill) startChild(ctx workflow.Context, w window) (string, workflow.ChildWorkflowFuture) {
	id := WindowWorkflowID(workflow.GetInfo(ctx).WorkflowExecution.ID, w.since, w.until)
	child := ExportLoadInput{Since: w.since, Until: w.until, Format: s.in.Format, Gzip: s.in.Gzip, Source: "backfill", Tuning: s.in.Tuning}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:    id,
		StaticSummary: ExportSummary(child),
		// A window loaded by an earlier run of this backfill is not
		// loaded again; a failed one may be.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		TypedSearchAttributes: temporal.NewSearchAttributes(KindKey.ValueSet("backfill"),
			WindowStartKey.ValueSet(w.since), WindowEndKey.ValueSet(w.until)),
	})
	f := workflow.ExecuteChildWorkflow(cctx, ExportLoad, child)
	s.progress.Running = append(s.progress.Running, id)
	s.show(ctx)
	return id, f
}

// show puts the backfill's progress in its current details.
func (s *backfill) show(ctx workflow.Context) {
	p := s.progress
	done := p.Loaded + p.Skipped + p.Failed
	lines := []string{fmt.Sprintf("%d/%d windows done: %d loaded, %d loaded before, %d failed; %d running",
		done, p.Windows, p.Loaded, p.Skipped, p.Failed, len(p.Running)),
		fmt.Sprintf("%d rows, %d quarantined", p.Rows, p.Quarantined)}
	if len(p.Failures) > 0 {
		lines = append(lines, "failed windows (each names its load id and the Replay input): "+strings.Join(p.Failures, "; "))
	}
	details(ctx, s.summary, lines...)
}

// count adds a finished window to the progress.
func (s *backfill) count(ctx workflow.Context, id string, res ExportLoadResult, err error, skipped bool) {
	s.progress.Running = remove(s.progress.Running, id)
	defer s.show(ctx)
	switch {
	case err != nil:
		s.progress.BackfillResult.Failed++
		if len(s.progress.Failures) < maxFailuresKept {
			s.progress.Failures = append(s.progress.Failures, id+": "+err.Error())
		}
		return
	case skipped:
		s.progress.Skipped++
	default:
		s.progress.Loaded++
	}
	s.progress.Rows += res.Rows
	s.progress.Quarantined += res.Quarantined
}

// runInOrder is version 0: children collected in start order, and a
// child id already taken counted as skipped.
func (s *backfill) runInOrder(ctx workflow.Context, ws []window) {
	type running struct {
		id     string
		future workflow.ChildWorkflowFuture
	}
	var inflight []running
	finish := func(r running) {
		var res ExportLoadResult
		err := r.future.Get(ctx, &res)
		var started *temporal.ChildWorkflowExecutionAlreadyStartedError
		if errors.As(err, &started) {
			s.count(ctx, r.id, ExportLoadResult{}, nil, true)
			return
		}
		s.count(ctx, r.id, res, err, false)
	}
	for _, w := range ws {
		if len(inflight) == s.in.Parallelism {
			finish(inflight[0])
			inflight = inflight[1:]
		}
		id, f := s.startChild(ctx, w)
		inflight = append(inflight, running{id, f})
	}
	for _, r := range inflight {
		finish(r)
	}
}

// runAsTheyFinish is version 1: at most Parallelism windows in flight,
// each collected as soon as it finishes. A window whose child id is taken
// by another run (an earlier backfill's, still running or completed) is
// awaited through that run, and counted by its real result.
func (s *backfill) runAsTheyFinish(ctx workflow.Context, ws []window) {
	sel := workflow.NewSelector(ctx)
	inflight := 0
	// other: f is the outcome of a run this backfill did not start.
	var collect func(id string, f workflow.Future, other bool)
	collect = func(id string, f workflow.Future, other bool) {
		sel.AddFuture(f, func(f workflow.Future) {
			var res ExportLoadResult
			err := f.Get(ctx, &res)
			if !other && alreadyStarted(err) {
				collect(id, s.awaitOther(ctx, id), true)
				return
			}
			inflight--
			s.count(ctx, id, res, err, other && err == nil)
		})
	}
	for _, w := range ws {
		for inflight == s.in.Parallelism {
			sel.Select(ctx)
		}
		id, f := s.startChild(ctx, w)
		inflight++
		collect(id, f, false)
	}
	for inflight > 0 {
		sel.Select(ctx)
	}
}

func alreadyStarted(err error) bool {
	var child *temporal.ChildWorkflowExecutionAlreadyStartedError
	var svc *serviceerror.WorkflowExecutionAlreadyStarted // how the test suite reports it
	return errors.As(err, &child) || errors.As(err, &svc)
}

// awaitOther returns a future of the ExportLoadResult of the run that
// holds window id's child id: it asks how that run is doing, every 10s
// backing off to 1m while it runs (durable timers, no activity slot held).
func (s *backfill) awaitOther(ctx workflow.Context, id string) workflow.Future {
	f, set := workflow.NewFuture(ctx)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		HeartbeatTimeout:       DefaultHeartbeatTimeout,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy:            apiRetry,
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		delay := 10 * time.Second
		for {
			var out payload.RunOutcome
			if err := workflow.ExecuteActivity(actx, payload.WorkflowOutcome, id).Get(ctx, &out); err != nil {
				set.Set(nil, fmt.Errorf("wait for %s: %w", id, err))
				return
			}
			if !out.Running {
				if out.Failed != "" {
					set.Set(nil, errors.New(out.Failed))
				} else {
					set.Set(ExportLoadResult{Rows: out.Rows, Quarantined: out.Quarantined}, nil)
				}
				return
			}
			if err := workflow.Sleep(ctx, delay); err != nil {
				set.Set(nil, err)
				return
			}
			delay = min(2*delay, time.Minute)
		}
	})
	return f
}

func remove(ss []string, s string) []string {
	out := ss[:0:0]
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
