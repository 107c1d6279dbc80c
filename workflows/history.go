package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ScheduledStartTimeKey is the time a schedule meant a run for: the
// server sets it on every workflow a schedule starts, also on those a
// schedule backfill starts for past times.
var ScheduledStartTimeKey = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

// HistoryExportInput configures the history schedule's export.
type HistoryExportInput struct {
	// Period is the length of the window, ending at the scheduled time
	// truncated to Period (default 24h: the previous UTC day).
	Period time.Duration `json:"period,omitempty"`
	// At replaces the scheduled time, for a run started by hand.
	At     time.Time `json:"at,omitzero"`
	Format string    `json:"format,omitempty"`
	Gzip   bool      `json:"gzip,omitempty"`
	Tuning Tuning    `json:"tuning,omitzero"`
}

// HistoryExport loads the period before its scheduled time through the
// Export API. Keyed by the scheduled time, not the clock, so the history
// schedule's "Backfill" over a date range in the UI loads that range,
// one workflow per day, each the day before its nominal time.
func HistoryExport(ctx workflow.Context, in HistoryExportInput) (ExportLoadResult, error) {
	if in.Period < 0 {
		return ExportLoadResult{}, badInput("period", "%s is negative", in.Period)
	}
	if in.Period == 0 {
		in.Period = 24 * time.Hour
	}
	at := in.At
	if at.IsZero() {
		var ok bool
		if at, ok = workflow.GetTypedSearchAttributes(ctx).GetTime(ScheduledStartTimeKey); !ok {
			return ExportLoadResult{}, badInput("at", "required when not started by a schedule (no %s)", ScheduledStartTimeKey.GetName())
		}
	}
	until := at.UTC().Truncate(in.Period)
	// Runs as this workflow (not a child): one workflow per period in the
	// UI, with the load's summary, details and load id.
	res, err := ExportLoad(ctx, ExportLoadInput{Since: until.Add(-in.Period), Until: until, Format: in.Format, Gzip: in.Gzip, Source: "history", Tuning: in.Tuning})
	if err != nil {
		return res, fmt.Errorf("history export: %w", err)
	}
	return res, nil
}
