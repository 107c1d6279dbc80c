package control

import (
	"context"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/workflows"
)

// AuditScheduleID is the id of the audit's schedule.
func (c *Control) AuditScheduleID() string { return c.TaskQueue + "-audit" }

// ReconcileScheduleID is the id of the daily reconcile's schedule.
func (c *Control) ReconcileScheduleID() string { return c.TaskQueue + "-daily-reconcile" }

// ApplyAuditSchedule creates or updates the audit's schedule: every
// interval (default 5 minutes), a run still going when the next is due
// skipped, a missed run not caught up (the next one measures the same).
func (c *Control) ApplyAuditSchedule(ctx context.Context, in workflows.AuditInput, paused bool) (bool, error) {
	if in.Interval <= 0 {
		in.Interval = workflows.DefaultAuditInterval
	}
	in.Tuning = c.tuning(in.Tuning)
	return c.applyOpsSchedule(ctx, c.AuditScheduleID(), client.ScheduleIntervalSpec{Every: in.Interval},
		workflows.Audit, in, "audit", paused)
}

// ApplyReconcileSchedule creates or updates the daily reconcile's
// schedule: every interval (default 24h) at offset past midnight UTC, so
// the previous day's late events have arrived and been pulled.
func (c *Control) ApplyReconcileSchedule(ctx context.Context, every, offset time.Duration, paused bool) (bool, error) {
	in := workflows.ScheduledReconcileInput{Tuning: c.tuning(workflows.Tuning{})}
	return c.applyOpsSchedule(ctx, c.ReconcileScheduleID(), client.ScheduleIntervalSpec{Every: every, Offset: offset},
		workflows.ScheduledReconcile, in, "reconcile", paused)
}

// applyOpsSchedule creates the schedule id running wf(arg) on the
// interval, or updates it to them; it reports whether it created it.
// A new schedule is created paused when paused is set (an existing one
// keeps its state).
func (c *Control) applyOpsSchedule(ctx context.Context, id string, iv client.ScheduleIntervalSpec, wf, arg any, kind string, paused bool) (bool, error) {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{iv}}
	action := &client.ScheduleWorkflowAction{
		ID: id, Workflow: wf, Args: []any{arg}, TaskQueue: c.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.KindKey.ValueSet(kind)),
	}
	return c.upsertSchedule(ctx, client.ScheduleOptions{
		ID: id, Spec: spec, Action: action, Paused: paused,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: time.Minute, // a run missed while the server was away is not worth running late
	})
}

// CompactScheduleID is the id of the compaction's schedule.
func (c *Control) CompactScheduleID() string { return c.TaskQueue + "-compaction" }

// ApplyCompactSchedule creates or updates the compaction's schedule:
// every interval, a run still going when the next is due skipped. It
// runs whether or not loads are deferred (KTPIPE_COMPACT_EVERY 0): loads
// marked pending before the compaction was turned off are still
// committed, and with none pending a run only lists the marks.
func (c *Control) ApplyCompactSchedule(ctx context.Context, every time.Duration, paused bool) (bool, error) {
	if every <= 0 {
		every = workflows.DefaultCompactEvery
	}
	in := workflows.CompactInput{Tuning: c.tuning(workflows.Tuning{})}
	return c.applyOpsSchedule(ctx, c.CompactScheduleID(), client.ScheduleIntervalSpec{Every: every},
		workflows.Compact, in, "compact", paused)
}

// TriggerAudit runs the audit schedule's action now (or returns the
// audit running) and returns its workflow id.
func (c *Control) TriggerAudit(ctx context.Context) (string, error) {
	return c.trigger(ctx, c.AuditScheduleID())
}

// StartRecount starts an audit that takes every count afresh, with the
// audit schedule's input otherwise (its interval and completeness
// delay, as schedule apply set them), and returns its workflow id. The
// id is the second's, so the command run twice in a second follows the
// one recount.
func (c *Control) StartRecount(ctx context.Context) (string, error) {
	h, err := c.scheduleHandle(ctx, c.AuditScheduleID())
	if err != nil {
		return "", err
	}
	d, err := h.Describe(ctx)
	if err != nil {
		return "", fmt.Errorf("audit schedule %s: %w", c.AuditScheduleID(), err)
	}
	var in workflows.AuditInput
	if err := scheduleInput(d, &in); err != nil {
		return "", fmt.Errorf("audit schedule %s: %w", c.AuditScheduleID(), err)
	}
	in.Recount = true
	id := c.AuditScheduleID() + "-recount-" + time.Now().UTC().Format("20060102T150405Z")
	run, err := c.start(ctx, id, "audit", "audit, every count afresh", time.Time{}, time.Time{}, workflows.Audit, in)
	if err != nil {
		return "", err
	}
	return run.GetID(), nil
}

// scheduleInput decodes a schedule's workflow input (its one argument).
func scheduleInput(d *client.ScheduleDescription, into any) error {
	action, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || len(action.Args) != 1 {
		return fmt.Errorf("its action is not a workflow with one input")
	}
	p, ok := action.Args[0].(*commonpb.Payload)
	if !ok {
		return fmt.Errorf("its input is a %T, not a payload", action.Args[0])
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, into); err != nil {
		return fmt.Errorf("decode its input: %w", err)
	}
	return nil
}

// TriggerCompaction starts a compaction now (or returns the one running)
// and returns its workflow id.
func (c *Control) TriggerCompaction(ctx context.Context) (string, error) {
	return c.trigger(ctx, c.CompactScheduleID())
}
