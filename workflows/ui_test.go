package workflows_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// A bad input fails the workflow at once, not retried, naming the field.
func TestBadInputNamesTheField(t *testing.T) {
	since, until := window.Since, window.Until
	tests := []struct {
		wf    any
		in    any
		field string
	}{
		{workflows.ExportLoad, workflows.ExportLoadInput{Until: until}, `"since"`},
		{workflows.ExportLoad, workflows.ExportLoadInput{Since: until, Until: since}, `"until"`},
		{workflows.ExportLoad, workflows.ExportLoadInput{Since: since, Until: until, Format: "xml"}, `"format"`},
		{workflows.Backfill, workflows.BackfillInput{Since: since, Until: until, Window: -time.Hour}, `"window"`},
		{workflows.Backfill, workflows.BackfillInput{Since: since, Until: until, Format: "parquet"}, `"format"`},
		{workflows.Replay, workflows.ReplayInput{}, `"loadId"`},
		{workflows.Replay, workflows.ReplayInput{LoadID: "x", Since: since, Until: until}, `"loadId"`},
		{workflows.Reconcile, workflows.ReconcileInput{Since: since}, `"until"`},
		{workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: until, Tuning: workflows.Tuning{Concurrency: -1}}, `"tuning.concurrency"`},
	}
	for _, tt := range tests {
		env := newEnv(t)
		env.RegisterWorkflow(workflows.Backfill)
		env.RegisterWorkflow(workflows.Replay)
		env.RegisterWorkflow(workflows.Reconcile)
		env.ExecuteWorkflow(tt.wf, tt.in)
		err := env.GetWorkflowError()
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != payload.ErrTypeBadInput || !appErr.NonRetryable() || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%+v: err %v, want a non-retryable BadInput naming %s", tt.in, err, tt.field)
		}
	}
}

// A load that fails after its chunks were staged says its load id and
// the Replay input that loads them, in its error (the UI's failure pane)
// and its current details.
func TestFailedLoadShowsItsLoadIDAndReplayInput(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusCompleted), nil)
	env.OnActivity(payload.DownloadExport, mock.Anything, mock.Anything).Return(payload.DownloadResult{Key: "exports/L/exp_1.data", Bytes: 100}, nil)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	env.OnActivity(payload.SplitExport, mock.Anything, mock.Anything).Return(manifest, nil)
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.CheckLoad, mock.Anything, mock.Anything).Return(payload.Completeness{},
		temporal.NewNonRetryableApplicationError("warehouse refused", "Test", nil))
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	err := env.GetWorkflowError()
	if err == nil {
		t.Fatal("load succeeded")
	}
	var loadID string
	if f := strings.Fields(err.Error()); len(f) > 1 {
		for i := range f[:len(f)-1] {
			if f[i] == "load" {
				loadID = f[i+1]
				break
			}
		}
	}
	want := `Replay {"loadId":"` + loadID + `"}`
	if loadID == "" || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "phase checking") {
		t.Fatalf("error %q lacks the load id and %s", err, want)
	}
	v, qerr := env.QueryWorkflow("__temporal_workflow_metadata")
	if qerr != nil {
		t.Fatal(qerr)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatal(err)
	}
	if d := md.GetCurrentDetails(); !strings.Contains(d, loadID) || !strings.Contains(d, want) || !strings.Contains(d, "export load 2026-11-01 00:00 → 2026-11-02 00:00 UTC (ndjson)") {
		t.Fatalf("current details %q", d)
	}
}
