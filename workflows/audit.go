package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// Defaults of the audit (see AuditInput).
const (
	DefaultAuditInterval     = 5 * time.Minute
	DefaultAuditDays         = 2
	DefaultCompletenessHours = 3
	// DefaultCompletenessDelay: hours are checked once an hourly pull
	// (and its run time) has had the chance to load them.
	DefaultCompletenessDelay = 70 * time.Minute
	// auditFloor bounds how far back the API's newest event is looked
	// for (NewestSourceEvent's call bound covers it).
	auditFloor = 30 * 24 * time.Hour
)

// AuditStaleAfter is KtpipeAuditStale's least age of the newest audit
// row (ops/prometheus/rules.yml).
const AuditStaleAfter = 15 * time.Minute

// AuditStaleAge is the newest audit row's age past which KtpipeAuditStale
// fires at audits every every (0: DefaultAuditInterval): three intervals,
// AuditStaleAfter at least, as the rule reads it. The one rule for the
// alert, ktpipe status and the workers' gauge reads.
func AuditStaleAge(every time.Duration) time.Duration {
	if every <= 0 {
		every = DefaultAuditInterval
	}
	return max(3*every, AuditStaleAfter)
}

// AuditInput configures one audit; zero fields take the defaults.
type AuditInput struct {
	// Interval is the schedule's interval: schema violations and resends
	// are counted over [audit time - Interval, audit time).
	Interval time.Duration
	// Days of fact, raw and quarantine partitions read (today's and the
	// days before): what bounds the audit's cost.
	Days int
	// CompletenessHours closed hours are checked, the last ending at the
	// whole hour at least CompletenessDelay before the audit.
	CompletenessHours int
	CompletenessDelay time.Duration
	// Recount takes every count afresh, carrying none from the day's
	// earlier audits (see warehouse.MeasureAudit): for an audit after
	// the warehouse was written outside ktpipe.
	Recount bool
	Tuning  Tuning
}

func (in AuditInput) withDefaults() AuditInput {
	if in.Interval <= 0 {
		in.Interval = DefaultAuditInterval
	}
	if in.Days <= 0 {
		in.Days = DefaultAuditDays
	}
	if in.CompletenessHours <= 0 {
		in.CompletenessHours = DefaultCompletenessHours
	}
	if in.CompletenessDelay <= 0 {
		in.CompletenessDelay = DefaultCompletenessDelay
	}
	return in
}

// auditAPICtx bounds the audit's API calls by its interval: an API that
// keeps failing fails the audit (and the next one tries again) instead
// of holding the schedule, whose overlap policy would skip every audit.
func auditAPICtx(ctx workflow.Context, interval time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              workflow.GetInfo(ctx).TaskQueueName + APIQueueSuffix,
		StartToCloseTimeout:    time.Minute,
		HeartbeatTimeout:       DefaultHeartbeatTimeout,
		ScheduleToCloseTimeout: max(interval, 2*time.Minute),
		RetryPolicy:            apiRetry,
	})
}

// CompletenessDelayFor is how long after an hour closes the audit checks
// it for completeness: once a pull has had the chance to load it (one
// pull interval), the compaction to commit it (one compaction interval,
// 0 without it), and ten minutes more.
func CompletenessDelayFor(pullEvery, compactEvery time.Duration) time.Duration {
	return pullEvery + compactEvery + 10*time.Minute
}

// Audit measures what the guide's alerts watch, from the warehouse and
// the API, and appends it to the audit table; the workers read the
// newest row into gauges. Its own schedule runs it every
// KTPIPE_AUDIT_INTERVAL. The audit time is the workflow's clock, so a
// retried write is the same row.
func Audit(ctx workflow.Context, in AuditInput) (payload.AuditRow, error) {
	in = in.withDefaults()
	t := in.Tuning.withDefaults()
	now := workflow.Now(ctx).UTC()
	row := payload.AuditRow{AuditedAt: now, IntervalStart: now.Add(-in.Interval), IntervalEnd: now}
	row.CompletenessEnd = now.Add(-in.CompletenessDelay).Truncate(time.Hour)
	row.CompletenessStart = row.CompletenessEnd.Add(-time.Duration(in.CompletenessHours) * time.Hour)
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (payload.AuditRow, error) { return row, nil }); err != nil {
		return row, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet("audit")); err != nil {
		return row, err
	}
	since := now.Truncate(24*time.Hour).AddDate(0, 0, -(in.Days - 1))
	var wh payload.AuditWarehouseResult
	if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.AuditWarehouse, payload.AuditWarehouseInput{
		Scope:        payload.AuditScope{Since: since, IntervalStart: row.IntervalStart, IntervalEnd: row.IntervalEnd},
		Completeness: payload.Window{Since: row.CompletenessStart, Until: row.CompletenessEnd},
		Recount:      in.Recount,
	}).Get(ctx, &wh); err != nil {
		return row, fmt.Errorf("audit warehouse: %w", err)
	}
	actx := auditAPICtx(ctx, in.Interval)
	if err := workflow.ExecuteActivity(actx, payload.NewestSourceEvent, payload.NewestInput{
		After: wh.WarehouseNewest, Floor: now.Add(-auditFloor), Until: now.Add(time.Minute),
	}).Get(ctx, &row.APINewest); err != nil {
		return row, fmt.Errorf("newest source event: %w", err)
	}
	if err := workflow.ExecuteActivity(actx, payload.CountSource,
		payload.Window{Since: row.CompletenessStart, Until: row.CompletenessEnd}).Get(ctx, &row.APICount); err != nil {
		return row, fmt.Errorf("count source: %w", err)
	}
	fillAudit(&row, wh)
	if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.WriteAudit, row).Get(ctx, nil); err != nil {
		return row, fmt.Errorf("write audit: %w", err)
	}
	return row, nil
}

// fillAudit derives the row's figures from the measures: the guide's lag
// (the API's newest event against the warehouse's, not against now) and
// the ratios, each 0 (or 1 for completeness) when there is nothing to
// divide by.
func fillAudit(row *payload.AuditRow, wh payload.AuditWarehouseResult) {
	row.WarehouseNewest = wh.WarehouseNewest
	row.CountedAt, row.CountedSince, row.CountedCommits, row.CountedNewest = wh.CountedAt, wh.CountedSince, wh.CountedCommits, wh.CountedNewest
	row.CountedHours, row.LiveCount = wh.CountedHours, wh.LiveCount
	if !row.APINewest.IsZero() {
		base := wh.WarehouseNewest
		if base.IsZero() {
			base = row.AuditedAt.Add(-auditFloor) // nothing in the warehouse: as far behind as the audit looks
		}
		row.IngestionLagSeconds = max(row.APINewest.Sub(base).Seconds(), 0)
	}
	row.FactRows, row.FactDuplicateRows = wh.FactRows, wh.FactDuplicateRows
	if wh.FactRows > 0 {
		row.FactDuplicateRatio = float64(wh.FactDuplicateRows) / float64(wh.FactRows)
	}
	row.SourceRecords, row.SourceResends = wh.SourceRecords, wh.SourceResends
	if wh.SourceRecords > 0 {
		row.SourceResendRatio = float64(wh.SourceResends) / float64(wh.SourceRecords)
	}
	row.SchemaViolations = wh.SchemaViolations
	if !wh.IntervalStart.IsZero() {
		row.IntervalStart = wh.IntervalStart
	}
	// Strict: a quarantined record without a usable timestamp counts
	// against its hour here, unlike in a count=true reconcile. An alert cannot tell
	// it from a lost event, and letting any such record explain a
	// shortfall let invalid records that arrived now hide an event lost
	// from an earlier hour (the alert test's case).
	row.WarehouseCount = wh.CompletenessCount
	row.CompletenessRatio = 1
	if row.APICount > 0 {
		row.CompletenessRatio = float64(row.WarehouseCount) / float64(row.APICount)
	}
}

// ReconcileStateKey is the pipeline_state key the scheduled reconcile
// writes its result under (JSON ReconcileState); the workers publish its
// ratio as ktpipe_reconcile_completeness_ratio.
const ReconcileStateKey = payload.ReconcileStateKey

// ReconcileState is the last scheduled reconcile's outcome.
type ReconcileState = payload.ReconcileState

// ScheduledReconcileInput configures the daily reconcile.
type ScheduledReconcileInput struct {
	Step   time.Duration // default 1h
	Tuning Tuning
}

// ScheduledReconcile reconciles the previous UTC day (a child
// Reconcile, step by step) and records its completeness ratio, so the
// workers can publish it. Its own daily schedule runs it after the late
// window; gaps are reported, not replayed: run `ktpipe reconcile
// --replay-gaps` for that.
func ScheduledReconcile(ctx workflow.Context, in ScheduledReconcileInput) (ReconcileState, error) {
	// The day before the time the schedule meant this run for, so a
	// catch-up after an outage or the UI's schedule Backfill reconciles
	// the days it names; started by hand, the day before now.
	at, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(ScheduledStartTimeKey)
	if !ok {
		at = workflow.Now(ctx)
	}
	until := at.UTC().Truncate(24 * time.Hour)
	st := ReconcileState{Since: until.AddDate(0, 0, -1), Until: until}
	if err := workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet("reconcile"),
		WindowStartKey.ValueSet(st.Since), WindowEndKey.ValueSet(st.Until)); err != nil {
		return st, err
	}
	st.Workflow = workflow.GetInfo(ctx).WorkflowExecution.ID + "/reconcile"
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: st.Workflow})
	var res ReconcileResult
	if err := workflow.ExecuteChildWorkflow(cctx, Reconcile, ReconcileInput{Since: st.Since, Until: st.Until,
		Step: in.Step, Tuning: in.Tuning}).Get(ctx, &res); err != nil {
		return st, fmt.Errorf("reconcile %s: %w", st.Since.Format("2006-01-02"), err)
	}
	st.Source, st.Warehouse, st.Ratio = res.Completeness()
	st.Gaps = len(res.Gaps)
	if err := workflow.ExecuteActivity(warehouseCtx(ctx, in.Tuning.withDefaults()), payload.RecordReconcile, st).Get(ctx, nil); err != nil {
		return st, fmt.Errorf("record reconcile state: %w", err)
	}
	return st, nil
}
