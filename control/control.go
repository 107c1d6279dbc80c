// Package control starts and steers ktpipe's workflows and its schedule:
// what the starter CLI and the local stack do on a Temporal client.
package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/workflows"
)

// Control operates ktpipe on one Temporal namespace and task queue.
// Workflow and schedule ids start with the task queue's name, so two
// deployments (two datasets, two task queues) can share a namespace.
type Control struct {
	Client     client.Client
	TaskQueue  string
	ScheduleID string // default <task queue>-incremental-pull
	// Tuning fills what a started workflow's input leaves zero (the CLI:
	// Concurrency from KTPIPE_CONCURRENCY). It travels in the input, so a
	// running workflow keeps the values it started with.
	Tuning workflows.Tuning
}

// tuning is t with its zero fields taken from c.Tuning.
func (c *Control) tuning(t workflows.Tuning) workflows.Tuning {
	if t.Concurrency == 0 {
		t.Concurrency = c.Tuning.Concurrency
	}
	if t.HeartbeatTimeout == 0 {
		t.HeartbeatTimeout = c.Tuning.HeartbeatTimeout
	}
	return t
}

// ScheduleName is the id of the schedule this Control steers.
func (c *Control) ScheduleName() string { return c.scheduleID() }

func (c *Control) scheduleID() string {
	if c.ScheduleID != "" {
		return c.ScheduleID
	}
	return c.TaskQueue + "-incremental-pull"
}

// ScheduleSpec is the incremental pull's schedule.
type ScheduleSpec struct {
	Interval      time.Duration
	CatchupWindow time.Duration
	Pull          workflows.IncrementalPullInput
	Paused        bool
}

func (c *Control) scheduleAction(s ScheduleSpec) *client.ScheduleWorkflowAction {
	pull := s.Pull
	pull.Tuning = c.tuning(pull.Tuning)
	return &client.ScheduleWorkflowAction{
		ID:                    c.scheduleID(),
		Workflow:              workflows.IncrementalPull,
		Args:                  []any{pull},
		TaskQueue:             c.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.KindKey.ValueSet("pull")),
		StaticSummary:         "incremental pull from the stored cursor (schedule " + c.scheduleID() + ")",
	}
}

// ApplySchedule creates the schedule, or updates it to spec when it
// exists; it reports whether it created it.
func (c *Control) ApplySchedule(ctx context.Context, s ScheduleSpec) (bool, error) {
	return c.upsertSchedule(ctx, client.ScheduleOptions{
		ID:   c.scheduleID(),
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: s.Interval}}},
		// A pull still running when the next is due is not doubled: the
		// next one starts from the checkpoint anyway.
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: s.CatchupWindow,
		Paused:        s.Paused,
		Action:        c.scheduleAction(s),
	})
}

// upsertSchedule creates a schedule, or, when it exists, updates its
// spec, action, overlap policy and catch-up window to o's (its paused
// state and note are the operator's, kept); it reports whether it
// created it. The one create-or-update every ktpipe schedule goes
// through.
func (c *Control) upsertSchedule(ctx context.Context, o client.ScheduleOptions) (bool, error) {
	_, err := c.Client.ScheduleClient().Create(ctx, o)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return false, fmt.Errorf("create schedule %s: %w", o.ID, err)
	}
	h := c.Client.ScheduleClient().GetHandle(ctx, o.ID)
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		sched := in.Description.Schedule
		spec := o.Spec
		sched.Spec = &spec
		sched.Action = o.Action
		sched.Policy.Overlap = o.Overlap
		if o.CatchupWindow > 0 {
			sched.Policy.CatchupWindow = o.CatchupWindow
		}
		return &client.ScheduleUpdate{Schedule: &sched}, nil
	}})
	if err != nil {
		return false, fmt.Errorf("update schedule %s: %w", o.ID, err)
	}
	return false, nil
}

// ErrNoSchedule is returned when the schedule does not exist.
var ErrNoSchedule = errors.New("schedule not found; run 'schedule apply' first")

func (c *Control) handle(ctx context.Context) (client.ScheduleHandle, error) {
	return c.scheduleHandle(ctx, c.scheduleID())
}

// scheduleHandle returns schedule id's handle; ErrNoSchedule when it
// does not exist.
func (c *Control) scheduleHandle(ctx context.Context, id string) (client.ScheduleHandle, error) {
	h := c.Client.ScheduleClient().GetHandle(ctx, id)
	if _, err := h.Describe(ctx); err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, ErrNoSchedule
		}
		return nil, fmt.Errorf("describe schedule %s: %w", id, err)
	}
	return h, nil
}

// PauseSchedule pauses (or, with pause=false, resumes) the schedule.
func (c *Control) PauseSchedule(ctx context.Context, pause bool, note string) error {
	h, err := c.handle(ctx)
	if err != nil {
		return err
	}
	if pause {
		return h.Pause(ctx, client.SchedulePauseOptions{Note: note})
	}
	return h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note})
}

// TriggerSchedule starts a pull now and returns its workflow id.
func (c *Control) TriggerSchedule(ctx context.Context) (string, error) {
	return c.trigger(ctx, c.scheduleID())
}

// trigger starts schedule id's action now and returns its workflow id.
func (c *Control) trigger(ctx context.Context, id string) (string, error) {
	h, err := c.scheduleHandle(ctx, id)
	if err != nil {
		return "", err
	}
	before, err := h.Describe(ctx)
	if err != nil {
		return "", err
	}
	// A pull the schedule started on its own is still running: the
	// overlap policy would skip the trigger, and that run pulls the same
	// events, so it is the pull to follow.
	if r := before.Info.RunningWorkflows; len(r) > 0 {
		return r[len(r)-1].WorkflowID, nil
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}); err != nil {
		return "", fmt.Errorf("trigger schedule: %w", err)
	}
	// The action starts asynchronously; wait until it shows.
	for i := 0; i < 100; i++ {
		d, err := h.Describe(ctx)
		if err != nil {
			return "", err
		}
		if n := len(d.Info.RecentActions); n > 0 && (len(before.Info.RecentActions) == 0 ||
			d.Info.RecentActions[n-1].ActualTime.After(before.Info.RecentActions[len(before.Info.RecentActions)-1].ActualTime)) {
			return d.Info.RecentActions[n-1].StartWorkflowResult.WorkflowID, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", errors.New("trigger schedule: no run started (is one still running? overlap policy is skip)")
}

// DescribeSchedule returns the schedule's description.
func (c *Control) DescribeSchedule(ctx context.Context) (*client.ScheduleDescription, error) {
	h, err := c.handle(ctx)
	if err != nil {
		return nil, err
	}
	return h.Describe(ctx)
}

// DescribeCompactSchedule returns the compaction schedule's description;
// ErrNoSchedule when it does not exist.
func (c *Control) DescribeCompactSchedule(ctx context.Context) (*client.ScheduleDescription, error) {
	h, err := c.scheduleHandle(ctx, c.CompactScheduleID())
	if err != nil {
		return nil, err
	}
	return h.Describe(ctx)
}

// BackfillID is the workflow id of a backfill: the range and what
// changes the work (window, format, gzip), so starting the same backfill
// twice finds the first, and another format is another backfill.
func (c *Control) BackfillID(in workflows.BackfillInput) string {
	w := in.Window
	if w <= 0 {
		w = 24 * time.Hour
	}
	return c.rangeID("backfill", in.Since, in.Until) + "-" + formatID(in.Format, in.Gzip) + "-w" + durationID(w)
}

// ExportID is the workflow id of a one-off export load: the window and
// the format it asks the API for.
func (c *Control) ExportID(in workflows.ExportLoadInput) string {
	return c.rangeID("export", in.Since, in.Until) + "-" + formatID(in.Format, in.Gzip)
}

// ReloadID names a load started again on purpose (--reload): a new id, so
// nothing of the earlier run (its finished windows) is taken as done.
func ReloadID(id string, now time.Time) string {
	return id + "-reload-" + now.UTC().Format("20060102T150405Z")
}

func formatID(format string, gzip bool) string {
	if format == "" {
		format = "ndjson"
	}
	if gzip {
		format += "-gz"
	}
	return format
}

// durationID writes d short: 6h, 90m, 45s.
func durationID(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// StartBackfill starts (or attaches to) the backfill of a range. A range
// already backfilled successfully is not loaded again.
func (c *Control) StartBackfill(ctx context.Context, in workflows.BackfillInput) (client.WorkflowRun, error) {
	return c.StartBackfillID(ctx, c.BackfillID(in), in)
}

// StartBackfillID is StartBackfill under a given id (ReloadID).
func (c *Control) StartBackfillID(ctx context.Context, id string, in workflows.BackfillInput) (client.WorkflowRun, error) {
	in.Tuning = c.tuning(in.Tuning)
	return c.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                c.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.KindKey.ValueSet("backfill"),
			workflows.WindowStartKey.ValueSet(in.Since), workflows.WindowEndKey.ValueSet(in.Until)),
		StaticSummary: workflows.BackfillSummary(in),
	}, workflows.Backfill, in)
}

// Prior is an earlier run under a workflow id.
type Prior struct {
	RunID        string
	Status       enumspb.WorkflowExecutionStatus
	Start, Close time.Time
}

// Done reports whether the run completed: its work is done.
func (p *Prior) Done() bool {
	return p != nil && p.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
}

// Running reports whether the run is still going.
func (p *Prior) Running() bool {
	return p != nil && p.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// PriorRun returns the latest run under id, or nil when there is none.
func (c *Control) PriorRun(ctx context.Context, id string) (*Prior, error) {
	d, err := c.Client.DescribeWorkflow(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe workflow %s: %w", id, err)
	}
	info := d.RawResponse.GetWorkflowExecutionInfo()
	p := &Prior{RunID: info.GetExecution().GetRunId(), Status: info.GetStatus(), Start: info.GetStartTime().AsTime()}
	if info.GetCloseTime() != nil {
		p.Close = info.GetCloseTime().AsTime()
	}
	return p, nil
}

// rangeID names a workflow of a kind over a time range.
func (c *Control) rangeID(kind string, since, until time.Time) string {
	return fmt.Sprintf("%s-%s-%s-%s", c.TaskQueue, kind, since.UTC().Format("20060102T150405Z"), until.UTC().Format("20060102T150405Z"))
}

// start starts a workflow, or returns the running one with the same id.
func (c *Control) start(ctx context.Context, id, kind, summary string, since, until time.Time, wf, in any) (client.WorkflowRun, error) {
	sa := []temporal.SearchAttributeUpdate{workflows.KindKey.ValueSet(kind)}
	if !since.IsZero() {
		sa = append(sa, workflows.WindowStartKey.ValueSet(since), workflows.WindowEndKey.ValueSet(until))
	}
	return c.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: c.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(sa...),
		StaticSummary:            summary,
	}, wf, in)
}

// StartExport starts a one-off export load of a window.
func (c *Control) StartExport(ctx context.Context, in workflows.ExportLoadInput) (client.WorkflowRun, error) {
	return c.StartExportID(ctx, c.ExportID(in), in)
}

// StartExportID is StartExport under a given id (ReloadID).
func (c *Control) StartExportID(ctx context.Context, id string, in workflows.ExportLoadInput) (client.WorkflowRun, error) {
	in.Tuning = c.tuning(in.Tuning)
	return c.start(ctx, id, "export", workflows.ExportSummary(in), in.Since, in.Until, workflows.ExportLoad, in)
}

// StartReplay starts a replay of a load id or a window.
func (c *Control) StartReplay(ctx context.Context, in workflows.ReplayInput) (client.WorkflowRun, error) {
	in.Tuning = c.tuning(in.Tuning)
	id := c.TaskQueue + "-replay-" + in.LoadID
	if in.LoadID == "" {
		id = c.rangeID("replay", in.Since, in.Until)
	}
	return c.start(ctx, id, "replay", workflows.ReplaySummary(in), in.Since, in.Until, workflows.Replay, in)
}

// QuarantineReplayID names the quarantine replay of a selection, so the
// same command run again while one runs attaches to it; once it has
// finished, a new run replays what is left.
func (c *Control) QuarantineReplayID(in workflows.QuarantineReplayInput) string {
	id := c.TaskQueue + "-quarantine-replay"
	if !in.Since.IsZero() {
		id = c.rangeID("quarantine-replay", in.Since, in.Until)
	}
	if in.Rule != "" {
		sum := sha256.Sum256([]byte(in.Rule))
		id += "-rule-" + hex.EncodeToString(sum[:6])
	}
	return id
}

// StartQuarantineReplay starts a replay of quarantined records.
func (c *Control) StartQuarantineReplay(ctx context.Context, in workflows.QuarantineReplayInput) (client.WorkflowRun, error) {
	in.Tuning = c.tuning(in.Tuning)
	return c.start(ctx, c.QuarantineReplayID(in), "quarantine-replay", "replay of quarantined records", in.Since, in.Until, workflows.QuarantineReplay, in)
}

// StartReconcile starts a reconciliation of a window.
func (c *Control) StartReconcile(ctx context.Context, in workflows.ReconcileInput) (client.WorkflowRun, error) {
	in.Tuning = c.tuning(in.Tuning)
	return c.start(ctx, c.rangeID("reconcile", in.Since, in.Until), "reconcile", workflows.ReconcileSummary(in), in.Since, in.Until, workflows.Reconcile, in)
}

// WorkflowSummary is one line of status.
type WorkflowSummary struct {
	ID, RunID, Type, Status string
	Start                   time.Time
	Close                   time.Time // zero while it runs
}

// ListWorkflows lists ktpipe's workflows in a status (Running, Failed, ...).
func (c *Control) ListWorkflows(ctx context.Context, status string, limit int) ([]WorkflowSummary, error) {
	query := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = '%s'", c.TaskQueue, status)
	resp, err := c.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list %s workflows: %w", status, err)
	}
	var out []WorkflowSummary
	for _, e := range resp.Executions {
		out = append(out, WorkflowSummary{ID: e.Execution.WorkflowId, RunID: e.Execution.RunId, Type: e.Type.Name,
			Status: e.Status.String(), Start: e.StartTime.AsTime()})
	}
	return out, nil
}
