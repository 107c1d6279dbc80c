package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/mock"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// TestQuarantineReplayContinuesAfterTheLastHash: each batch starts after
// the record hash the previous one ended at (records that still fail are
// not read again and again), a batch with nothing to split loads nothing,
// and the counts add up across batches.
func TestQuarantineReplayContinuesAfterTheLastHash(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.QuarantineReplay)
	files := []payload.QuarantineFile{{Key: "loads/L/input/records.json", Format: "json"}}
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil).Once()
	env.OnActivity(payload.ExportQuarantine, mock.Anything, mock.MatchedBy(func(in payload.ExportQuarantineInput) bool { return in.After == "" })).
		Return(payload.ExportQuarantineResult{Files: files, Selected: 10, Exported: 9, Unreadable: 1, Last: "h10", More: true}, nil).Once()
	env.OnActivity(payload.ExportQuarantine, mock.Anything, mock.MatchedBy(func(in payload.ExportQuarantineInput) bool { return in.After == "h10" })).
		Return(payload.ExportQuarantineResult{Selected: 3, Skipped: 3, Last: "h13", More: true}, nil).Once()
	env.OnActivity(payload.ExportQuarantine, mock.Anything, mock.MatchedBy(func(in payload.ExportQuarantineInput) bool { return in.After == "h13" })).
		Return(payload.ExportQuarantineResult{Last: "", More: false}, nil).Once()
	env.OnActivity(payload.SplitQuarantine, mock.Anything, mock.Anything).Return(manifest, nil).Once()
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil).Times(len(manifest.Chunks))
	env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(payload.CheckLoad, mock.Anything, mock.Anything).Return(payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1}, nil).Once()
	env.OnActivity(payload.CleanupLoad, mock.Anything, mock.Anything).Return(nil).Times(3)
	env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil).Once()

	env.ExecuteWorkflow(workflows.QuarantineReplay, workflows.QuarantineReplayInput{BatchSize: 10})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.QuarantineReplayResult
	env.GetWorkflowResult(&res)
	want := workflows.QuarantineReplayResult{Batches: 3, Selected: 13, Promoted: 9, StillInvalid: 1, Unreadable: 1, Skipped: 3}
	if res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
}
