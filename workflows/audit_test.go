package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/uber-go/tally/v4"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/metrics/wfmetrics"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// The guide's lag is the API's newest event against the warehouse's
// newest, not against the clock: a quiet source is not a lagging
// pipeline.
func TestAuditLagIsAPINewestAgainstWarehouseNewest(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(acts)
	now := time.Date(2026, 11, 29, 15, 2, 0, 0, time.UTC)
	env.SetStartTime(now)
	whNewest := now.Add(-3 * time.Hour) // no events for hours: the source is quiet
	apiNewest := whNewest.Add(400 * time.Second)
	counted := now.Add(-10 * time.Minute) // an earlier audit's counts, carried
	hours := payload.HourCounts{Since: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), Counts: []int64{400, 300, 299}}
	live := payload.LiveCount{LiveNewest: whNewest.Add(-time.Minute), LiveNewestIngested: now.Add(-2 * time.Minute), LiveCountedAt: counted}
	var asked payload.AuditWarehouseInput
	env.OnActivity(payload.AuditWarehouse, mock.Anything, mock.Anything).Return(func(_ context.Context, in payload.AuditWarehouseInput) (payload.AuditWarehouseResult, error) {
		asked = in
		return payload.AuditWarehouseResult{AuditMeasures: payload.AuditMeasures{WarehouseNewest: whNewest, FactRows: 2000, FactDuplicateRows: 1,
			SourceRecords: 100, SourceResends: 5, SchemaViolations: 2}, CompletenessCount: 999,
			CountedAt: counted, CountedSince: in.Scope.Since, CountedCommits: 42, CountedNewest: whNewest, CountedHours: hours, LiveCount: live,
			IntervalStart: in.Scope.IntervalStart.Add(-5 * time.Minute)}, nil // an audit skipped before
	}).Once()
	env.OnActivity(payload.NewestSourceEvent, mock.Anything, mock.MatchedBy(func(in payload.NewestInput) bool { return in.After.Equal(whNewest) })).Return(apiNewest, nil).Once()
	env.OnActivity(payload.CountSource, mock.Anything, payload.Window{Since: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 29, 13, 0, 0, 0, time.UTC)}).Return(int64(1000), nil).Once()
	var written payload.AuditRow
	env.OnActivity(payload.WriteAudit, mock.Anything, mock.Anything).Return(func(_ context.Context, r payload.AuditRow) error { written = r; return nil }).Once()

	env.ExecuteWorkflow(workflows.Audit, workflows.AuditInput{Recount: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	env.AssertExpectations(t)
	if !asked.Recount {
		t.Error("the warehouse was not asked to recount")
	}
	if !written.CountedAt.Equal(counted) || !written.CountedSince.Equal(asked.Scope.Since) || written.CountedCommits != 42 || !written.CountedNewest.Equal(whNewest) {
		t.Errorf("counted at %s since %s with %d commits, newest %s; want the warehouse's %s, %s, 42, %s", written.CountedAt, written.CountedSince,
			written.CountedCommits, written.CountedNewest, counted, asked.Scope.Since, whNewest)
	}
	if fmt.Sprint(written.CountedHours) != fmt.Sprint(hours) {
		t.Errorf("hours counted %+v, want the warehouse's %+v", written.CountedHours, hours)
	}
	if written.LiveCount != live {
		t.Errorf("live count %+v, want the warehouse's %+v", written.LiveCount, live)
	}
	if written.IngestionLagSeconds != 400 {
		t.Errorf("lag %v s, want 400 (API newest - warehouse newest)", written.IngestionLagSeconds)
	}
	if written.FactDuplicateRatio != 0.0005 || written.SourceResendRatio != 0.05 || written.SchemaViolations != 2 || written.CompletenessRatio != 0.999 {
		t.Errorf("row %+v", written)
	}
	if !asked.Scope.IntervalStart.Equal(now.Add(-5*time.Minute)) || !asked.Scope.IntervalEnd.Equal(now) || !asked.Scope.Since.Equal(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("scope %+v: want the last 5 minutes, partitions from yesterday", asked.Scope)
	}
	if !written.IntervalStart.Equal(now.Add(-10*time.Minute)) || !written.IntervalEnd.Equal(now) {
		t.Errorf("row's interval %s..%s, want the warehouse's start (the audit before's end) to now", written.IntervalStart, written.IntervalEnd)
	}
	if !written.AuditedAt.Equal(now) {
		t.Errorf("audited at %s, want the workflow's clock %s", written.AuditedAt, now)
	}
	// The schedule's audit (no Recount) lets the warehouse carry counts.
	env = s.NewTestWorkflowEnvironment()
	env.RegisterActivity(acts)
	env.SetStartTime(now)
	env.OnActivity(payload.AuditWarehouse, mock.Anything, mock.Anything).Return(func(_ context.Context, in payload.AuditWarehouseInput) (payload.AuditWarehouseResult, error) {
		asked = in
		return payload.AuditWarehouseResult{}, nil
	}).Once()
	env.OnActivity(payload.NewestSourceEvent, mock.Anything, mock.Anything).Return(time.Time{}, nil).Once()
	env.OnActivity(payload.CountSource, mock.Anything, mock.Anything).Return(int64(0), nil).Once()
	env.OnActivity(payload.WriteAudit, mock.Anything, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(workflows.Audit, workflows.AuditInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	env.AssertExpectations(t)
	if asked.Recount {
		t.Error("the scheduled audit asked the warehouse to recount")
	}
}

// What workflow code counts goes through the SDK's handler: a loaded
// export's records by outcome, and the export by its final status. (That
// the worker's handler hands them to the Prometheus registry it serves is
// metrics' test; a tally test scope stands in for it here, so workflow
// tests link no Prometheus.)
func TestExportLoadCountsRecordsAndExports(t *testing.T) {
	scope := tally.NewTestScope("", nil)
	var s testsuite.WorkflowTestSuite
	s.SetMetricsHandler(sdktally.NewMetricsHandler(scope))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(acts)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusQueued), nil).Once()
	env.OnActivity(payload.GetExport, mock.Anything, "exp_1").Return(export(payload.StatusFailed), nil).Once()
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusQueued), nil).Once()
	env.OnActivity(payload.GetExport, mock.Anything, "exp_1").Return(export(payload.StatusCompleted), nil).Once()
	happyLoad(env)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, c := range scope.Snapshot().Counters() {
		switch c.Name() {
		case wfmetrics.RecordsName:
			got["records "+c.Tags()["outcome"]] += float64(c.Value())
		case wfmetrics.ExportsName:
			got["exports "+c.Tags()["status"]] += float64(c.Value())
		}
	}
	want := map[string]float64{"records read": 10, "records loaded": 9, "records quarantined": 1, "exports failed": 1, "exports ready": 1}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("counted %v, want %v", got, want)
		}
	}
}

// The daily reconcile covers the day before the time its schedule meant
// it for, not before the clock: a catch-up run after an outage, or the
// UI's schedule Backfill, reconciles the days it names.
func TestScheduledReconcileCoversTheDayBeforeItsScheduledTime(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(acts)
	env.RegisterWorkflow(workflows.Reconcile)
	env.SetStartTime(time.Date(2026, 11, 29, 15, 0, 0, 0, time.UTC)) // the catch-up runs days late
	scheduled := time.Date(2026, 11, 10, 1, 0, 0, 0, time.UTC)
	if err := env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(workflows.ScheduledStartTimeKey.ValueSet(scheduled))); err != nil {
		t.Fatal(err)
	}
	var asked workflows.ReconcileInput
	env.OnWorkflow(workflows.Reconcile, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in workflows.ReconcileInput) (workflows.ReconcileResult, error) {
		asked = in
		return workflows.ReconcileResult{}, nil
	}).Once()
	env.OnActivity(payload.RecordReconcile, mock.Anything, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(workflows.ScheduledReconcile, workflows.ScheduledReconcileInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC); !asked.Since.Equal(want) || !asked.Until.Equal(want.AddDate(0, 0, 1)) {
		t.Fatalf("reconciled %s to %s, want the day before the scheduled time: %s", asked.Since, asked.Until, want.Format("2006-01-02"))
	}
}
