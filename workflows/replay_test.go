package workflows_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/workflows"
)

// TestReplayRecordedHistories replays histories of real runs (recorded by
// the integration tests against the dev server) through today's workflow
// code. A change that would break running workflows — a new activity
// call, a reordered step, without a version marker — fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("found %d recorded histories, want one per workflow kind; record them with KTPIPE_RECORD_HISTORIES=1 go test ./integration", len(files))
	}
	r := worker.NewWorkflowReplayer()
	for _, wf := range workflows.All() {
		r.RegisterWorkflow(wf)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			h, err := client.HistoryFromJSON(in, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Workflows derive child and load ids from their own id, so
			// replay under the original one.
			id, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".id")
			if err != nil {
				t.Fatal(err)
			}
			runID := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()
			err = r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: strings.TrimSpace(string(id)), RunID: runID},
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
