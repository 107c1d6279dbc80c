package control

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
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
