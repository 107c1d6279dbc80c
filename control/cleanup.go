package control

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/workflows"
)

// CleanupScheduleID is the id of the staging clean-up's schedule: its
// own schedule, so pausing the pull does not stop the clean-up and the
// other way round.
func (c *Control) CleanupScheduleID() string { return c.TaskQueue + "-staging-cleanup" }

// CleanupSpec is the staging clean-up's schedule.
type CleanupSpec struct {
	Interval  time.Duration // default workflows.DefaultCleanupInterval (daily)
	Retention time.Duration
}

// ApplyCleanupSchedule creates the clean-up schedule, or updates it to
// spec; it reports whether it created it. A run still going when the
// next is due is skipped, and a missed run is not caught up (the next
// one removes the same files).
func (c *Control) ApplyCleanupSchedule(ctx context.Context, s CleanupSpec) (bool, error) {
	if s.Interval <= 0 {
		s.Interval = workflows.DefaultCleanupInterval
	}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: s.Interval}}}
	action := &client.ScheduleWorkflowAction{
		ID:                    c.CleanupScheduleID(),
		Workflow:              workflows.Cleanup,
		Args:                  []any{workflows.CleanupInput{Retention: s.Retention}},
		TaskQueue:             c.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.KindKey.ValueSet("cleanup")),
		StaticSummary:         "staging clean-up: files older than " + s.Retention.String() + " that no open workflow uses",
	}
	return c.upsertSchedule(ctx, client.ScheduleOptions{
		ID: c.CleanupScheduleID(), Spec: spec, Action: action,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: time.Hour,
	})
}
