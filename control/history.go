package control

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/workflows"
)

// HistoryScheduleID is the id of the history schedule: a daily export of
// the previous UTC day, keyed by the scheduled time, so the UI's schedule
// "Backfill" over a date range loads that range, one workflow per day.
func (c *Control) HistoryScheduleID() string { return c.TaskQueue + "-history-export" }

// MaxHistoryBackfillDays bounds one backfill of the history schedule:
// the schedule buffers its runs (overlap policy buffer all) and the
// server keeps at most 1,000 buffered starts; a longer range is several
// backfills, or `ktpipe backfill`.
const MaxHistoryBackfillDays = 400

// HistorySpec is the history schedule.
type HistorySpec struct {
	// Offset after midnight UTC when the daily export runs: after the late
	// window, so the day's late events are in the export.
	Offset time.Duration
	Export workflows.HistoryExportInput
	// Paused: the schedule only serves backfills; the hourly pull loads
	// new events.
	Paused bool
}

// ApplyHistorySchedule creates the history schedule, or updates it to s;
// it reports whether it created it. Runs are buffered, one at a time (a
// backfill of a month is 31 runs in order, none skipped), and their
// workflow ids end with the scheduled time, so each day is its own
// workflow in the UI.
func (c *Control) ApplyHistorySchedule(ctx context.Context, s HistorySpec) (bool, error) {
	s.Export.Tuning = c.tuning(s.Export.Tuning)
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: 24 * time.Hour, Offset: s.Offset}}}
	action := &client.ScheduleWorkflowAction{
		ID:                    c.HistoryScheduleID(),
		Workflow:              workflows.HistoryExport,
		Args:                  []any{s.Export},
		TaskQueue:             c.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.KindKey.ValueSet("history")),
		StaticSummary:         "history export of the UTC day before the scheduled time (" + formatID(s.Export.Format, s.Export.Gzip) + ")",
	}
	return c.upsertSchedule(ctx, client.ScheduleOptions{
		ID: c.HistoryScheduleID(), Spec: spec, Action: action,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
		CatchupWindow: 24 * time.Hour,
		Paused:        s.Paused,
		Note:          "ktpipe: daily export of the previous day; use the UI's Backfill to load a date range",
	})
}

// BackfillHistory asks the history schedule to run for every day in
// [since, until): each run exports the day before its scheduled time, so
// the days loaded are [since-1d, until-1d) shifted to whole days. It is
// what the UI's Backfill on the schedule does.
func (c *Control) BackfillHistory(ctx context.Context, since, until time.Time) error {
	if days := until.Sub(since) / (24 * time.Hour); days > MaxHistoryBackfillDays {
		return fmt.Errorf("backfill of %d days is more than %d: split the range", days, MaxHistoryBackfillDays)
	}
	h := c.Client.ScheduleClient().GetHandle(ctx, c.HistoryScheduleID())
	err := h.Backfill(ctx, client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{{
		Start: since, End: until, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
	}}})
	if err != nil {
		return fmt.Errorf("backfill schedule %s: %w", c.HistoryScheduleID(), err)
	}
	return nil
}
