package workflows_test

import (
	"bytes"
	"encoding/json"
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

// A run started before the input checks, with an input they refuse (a
// negative parallelism, which the backfill then took as the default),
// replays as it ran: the checks are versioned.
func TestRunStartedBeforeTheInputChecksReplays(t *testing.T) {
	const f = "testdata/histories/backfill.json"
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	h, err := client.HistoryFromJSON(bytes.NewReader(raw), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]
	in := string(p.GetData())
	if !strings.Contains(in, `"Parallelism":2`) {
		t.Fatalf("recorded input %s: want Parallelism 2 to replace", in)
	}
	var bad workflows.BackfillInput
	if err := json.Unmarshal([]byte(strings.Replace(in, `"Parallelism":2`, `"Parallelism":-1`, 1)), &bad); err != nil {
		t.Fatal(err)
	}
	if bad.Check() == nil {
		t.Fatal("the input checks take a negative parallelism; the test needs an input they refuse")
	}
	p.Data = []byte(strings.Replace(in, `"Parallelism":2`, `"Parallelism":-1`, 1))
	id, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".id")
	if err != nil {
		t.Fatal(err)
	}
	r := worker.NewWorkflowReplayer()
	for _, wf := range workflows.All() {
		r.RegisterWorkflow(wf)
	}
	runID := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()
	if err := r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: strings.TrimSpace(string(id)), RunID: runID},
	}); err != nil {
		t.Fatal(err)
	}
}

// A batch begun by a worker that predates KTPIPE_WEBHOOK_LIVE_ONLY (it
// loaded its deliveries, deferred) replays on this version with the
// receiver's LiveOnly in its input: it keeps loading, as it began to.
func TestBatchBegunBeforeLiveOnlyReplays(t *testing.T) {
	const f = "testdata/histories/webhook_batch_deferred.json"
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	h, err := client.HistoryFromJSON(bytes.NewReader(raw), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]
	var in map[string]any
	if err := json.Unmarshal(p.GetData(), &in); err != nil {
		t.Fatal(err)
	}
	if in["defer"] != true || in["live_only"] != nil {
		t.Fatalf("recorded input %s: want a deferred batch without live_only", p.GetData())
	}
	in["live_only"] = true
	if p.Data, err = json.Marshal(in); err != nil {
		t.Fatal(err)
	}
	id, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".id")
	if err != nil {
		t.Fatal(err)
	}
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(workflows.WebhookBatch)
	runID := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()
	if err := r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: strings.TrimSpace(string(id)), RunID: runID},
	}); err != nil {
		t.Fatal(err)
	}
}
