package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// BackfillInput is a date range to load through exports.
type BackfillInput struct {
	Since, Until time.Time
	Window       time.Duration // one export per window (default 24h)
	Parallelism  int           // windows in flight (default 2)
	Format       string
	Gzip         bool
	Tuning       Tuning
	// MaxWindowsPerRun bounds the windows one run starts before it
	// continues as new (default 500), so history stays small for any
	// range: two years of hourly windows is 17,520 children.
	MaxWindowsPerRun int

	// Set by the workflow itself when it continues as new: the windows
	// before Since, and those of them that failed.
	Done   BackfillResult
	Failed []string
}

// BackfillResult sums up the windows.
type BackfillResult struct {
	Windows     int
	Loaded      int
	Skipped     int // windows an earlier run of this backfill already loaded
	Rows        int64
	Quarantined int64
}

// BackfillProgress is what the progress query returns.
type BackfillProgress struct {
	BackfillResult
	Running []string
	Failed  []string
}

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
}

func (s *backfill) setup(ctx workflow.Context) error {
	if s.in.Window <= 0 {
		s.in.Window = 24 * time.Hour
	}
	if s.in.Parallelism <= 0 {
		s.in.Parallelism = 2
	}
	if s.in.MaxWindowsPerRun <= 0 {
		s.in.MaxWindowsPerRun = 500
	}
	if !s.in.Since.Before(s.in.Until) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("range [%s, %s) is empty", s.in.Since, s.in.Until), "BadInput", nil)
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (BackfillProgress, error) { return s.progress, nil }); err != nil {
		return err
	}
	// The whole range, also after continue-as-new moved Since on (every
	// window before it was a full Window long).
	rangeStart := s.in.Since.Add(-time.Duration(s.in.Done.Windows) * s.in.Window)
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
	s.progress.Failed = s.in.Failed
	var rest []window
	if len(ws) > s.in.MaxWindowsPerRun {
		ws, rest = ws[:s.in.MaxWindowsPerRun], ws[s.in.MaxWindowsPerRun:]
	}
	parentID := workflow.GetInfo(ctx).WorkflowExecution.ID
	type running struct {
		id     string
		future workflow.ChildWorkflowFuture
	}
	var inflight []running
	finish := func(r running) {
		var res ExportLoadResult
		err := r.future.Get(ctx, &res)
		s.progress.Running = remove(s.progress.Running, r.id)
		var started *temporal.ChildWorkflowExecutionAlreadyStartedError
		switch {
		case errors.As(err, &started):
			s.progress.Skipped++
		case err != nil:
			s.progress.Failed = append(s.progress.Failed, r.id+": "+err.Error())
		default:
			s.progress.Loaded++
			s.progress.Rows += res.Rows
			s.progress.Quarantined += res.Quarantined
		}
	}
	for _, w := range ws {
		if len(inflight) == s.in.Parallelism {
			finish(inflight[0])
			inflight = inflight[1:]
		}
		id := WindowWorkflowID(parentID, w.since, w.until)
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: id,
			// A window loaded by an earlier run of this backfill is not
			// loaded again; a failed one may be.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
			TypedSearchAttributes: temporal.NewSearchAttributes(KindKey.ValueSet("backfill"),
				WindowStartKey.ValueSet(w.since), WindowEndKey.ValueSet(w.until)),
		})
		f := workflow.ExecuteChildWorkflow(cctx, ExportLoad, ExportLoadInput{
			Since: w.since, Until: w.until, Format: s.in.Format, Gzip: s.in.Gzip, Source: "backfill", Tuning: s.in.Tuning,
		})
		s.progress.Running = append(s.progress.Running, id)
		inflight = append(inflight, running{id, f})
	}
	for _, r := range inflight {
		finish(r)
	}
	if len(rest) > 0 {
		next := s.in
		next.Since = rest[0].since
		next.Done = s.progress.BackfillResult
		next.Done.Windows = s.in.Done.Windows + len(ws)
		next.Failed = s.progress.Failed
		return BackfillResult{}, workflow.NewContinueAsNewError(ctx, Backfill, next)
	}
	if n := len(s.progress.Failed); n > 0 {
		return s.progress.BackfillResult, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%d of %d windows failed (start the same backfill again to retry them): %s", n, s.progress.Windows, strings.Join(s.progress.Failed, "; ")),
			"BackfillFailed", nil)
	}
	return s.progress.BackfillResult, nil
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
