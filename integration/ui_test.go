package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/workflows"
)

// readmeInputs are the Start Workflow inputs the README gives, by name.
func readmeInputs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("<!-- ui-input: ([A-Za-z-]+) -->\n```json\n(.*)\n```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	for _, name := range []string{"Backfill", "ExportLoad", "Replay", "Replay-load", "Reconcile"} {
		if out[name] == "" {
			t.Fatalf("README gives no input for %s", name)
		}
	}
	return out
}

// startRaw starts a workflow the way the UI's Start Workflow form does:
// a type name, a task queue and the JSON text as a json/plain payload.
func (s *stack) startRaw(id, wfType, input string) client.WorkflowRun {
	s.t.Helper()
	p := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(input)}
	run, err := temporalSrv.Client().ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: s.tq},
		wfType, converter.NewRawValue(p))
	if err != nil {
		s.t.Fatal(err)
	}
	return run
}

// TestStartFromTheUI starts a Backfill, an ExportLoad, a Replay and a
// Reconcile exactly as the README tells an operator to in the UI, shows
// a failed load's id at a glance, and loads history through the history
// schedule's backfill.
func TestStartFromTheUI(t *testing.T) {
	s := newStack(t, simConfig(), true)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	inputs := readmeInputs(t)
	since, until := s.historyWindow()
	day := since.Truncate(24 * time.Hour).Add(24 * time.Hour) // a whole UTC day inside the history
	// The README's example dates, moved onto the simulated history.
	at := func(name string, from, to time.Time) string {
		r := strings.NewReplacer(`"2026-11-01T00:00:00Z"`, `"`+from.Format(time.RFC3339)+`"`,
			`"2026-11-03T00:00:00Z"`, `"`+to.Format(time.RFC3339)+`"`, `"2026-11-02T00:00:00Z"`, `"`+to.Format(time.RFC3339)+`"`)
		return r.Replace(inputs[name])
	}
	truth := s.sim.Truth(since, until)

	var bf workflows.BackfillResult
	bfRun := s.startRaw("ui-backfill-"+s.tq, "Backfill", at("Backfill", since, until))
	if err := bfRun.Get(ctx, &bf); err != nil {
		t.Fatal(err)
	}
	recordHistory(t, bfRun.GetID(), bfRun.GetRunID(), "backfill_ui_json") // an input with JSON names and "24h"
	if bf.Windows != 5 || bf.Loaded != 5 || bf.Rows != int64(len(truth.Valid)) {
		t.Fatalf("backfill %+v, want 5 windows loaded, %d rows", bf, len(truth.Valid))
	}
	s.assertExactlyOnce(since, until)

	var exp workflows.ExportLoadResult
	if err := s.startRaw("ui-export-"+s.tq, "ExportLoad", at("ExportLoad", day, day.Add(24*time.Hour))).Get(ctx, &exp); err != nil {
		t.Fatal(err)
	}
	if dayTruth := s.sim.Truth(day, day.Add(24*time.Hour)); exp.Rows != int64(len(dayTruth.Valid)) || exp.LoadID == "" {
		t.Fatalf("export %+v, want %d rows and a load id", exp, len(dayTruth.Valid))
	}

	var rec workflows.ReconcileResult
	if err := s.startRaw("ui-reconcile-"+s.tq, "Reconcile", at("Reconcile", since, until)).Get(ctx, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Windows) != 5 || len(rec.Gaps) != 0 {
		t.Fatalf("reconcile: %d windows, gaps %+v; want 5 windows, no gap", len(rec.Windows), rec.Gaps)
	}

	var rep workflows.ReplayResult
	if err := s.startRaw("ui-replay-"+s.tq, "Replay", at("Replay", day, day.Add(24*time.Hour))).Get(ctx, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.From != "source" || rep.Rows != exp.Rows {
		t.Fatalf("replay %+v, want %d rows from the source", rep, exp.Rows)
	}
	s.assertExactlyOnce(since, until)

	// The load-id form: a load with nothing staged fails at once, and
	// says so; the input is accepted as the README gives it.
	missing := "ui-never-staged-" + s.tq
	err := s.startRaw("ui-replay-load-"+s.tq, "Replay", strings.Replace(inputs["Replay-load"], "LOAD_ID", missing, 1)).Get(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing staged") {
		t.Fatalf("replay of %s: %v", missing, err)
	}

	// A bad input fails at once, naming what is wrong.
	err = s.startRaw("ui-bad-"+s.tq, "Backfill", `{"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z", "window": "6 hours"}`).Get(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), `input field "window": duration "6 hours"`) {
		t.Fatalf("bad duration: %v", err)
	}
	err = s.startRaw("ui-bad-format-"+s.tq, "ExportLoad", `{"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z", "format": "xml"}`).Get(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), `input field "format"`) {
		t.Fatalf("bad format: %v", err)
	}

	// A failed load shows its load id at a glance: search attribute,
	// current details and error, with the Replay input to copy.
	s.sim.SetFaults(ktsim.Faults{ExportFailRate: 1})
	failed := s.startRaw("ui-failing-"+s.tq, "ExportLoad", at("ExportLoad", day, day.Add(24*time.Hour)))
	err = failed.Get(ctx, nil)
	s.sim.SetFaults(ktsim.Faults{})
	if err == nil || !strings.Contains(err.Error(), `(retry: Replay {"since":"`+day.Format(time.RFC3339)) {
		t.Fatalf("failed load's error: %v", err)
	}
	desc, derr := temporalSrv.Client().DescribeWorkflow(ctx, failed.GetID(), failed.GetRunID())
	if derr != nil {
		t.Fatal(derr)
	}
	var loadID string
	if p := desc.RawResponse.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[workflows.LoadIDKey.GetName()]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &loadID)
	}
	if loadID == "" || !strings.HasPrefix(loadID, "ui-failing-") {
		t.Fatalf("failed load's %s: %q", workflows.LoadIDKey.GetName(), loadID)
	}
	v, qerr := temporalSrv.Client().QueryWorkflow(ctx, failed.GetID(), failed.GetRunID(), "__temporal_workflow_metadata")
	if qerr != nil {
		t.Fatal(qerr)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatal(err)
	}
	if d := md.GetCurrentDetails(); !strings.Contains(d, loadID) || !strings.Contains(d, "**failed**") || !strings.Contains(d, "Replay {") {
		t.Fatalf("failed load's current details: %q", d)
	}
	recordHistory(t, failed.GetID(), failed.GetRunID(), "export_load_failed_ui")

	// The history schedule's backfill over two days: two HistoryExports,
	// one a day, each loading the day before its scheduled time.
	ctl := &control.Control{Client: temporalSrv.Client(), TaskQueue: s.tq, Tuning: s.tuning}
	if _, err := ctl.ApplyHistorySchedule(ctx, control.HistorySpec{Offset: 7 * time.Hour, Paused: true,
		Export: workflows.HistoryExportInput{Format: "ndjson", Tuning: s.tuning}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), ctl.HistoryScheduleID()).Delete(context.Background())
	})
	first := day.Add(24 * time.Hour) // runs at day+1 07:00 and day+2 07:00 load day and day+1
	if err := ctl.BackfillHistory(ctx, first, first.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	query := fmt.Sprintf("WorkflowType = 'HistoryExport' AND TaskQueue = '%s' AND ExecutionStatus = 'Completed'", s.tq)
	var done []string
	for len(done) < 2 {
		resp, err := temporalSrv.Client().ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatal(err)
		}
		done = done[:0]
		for _, e := range resp.Executions {
			done = append(done, e.Execution.WorkflowId)
		}
		if ctx.Err() != nil {
			t.Fatalf("history backfill: %d of 2 days done: %v", len(done), done)
		}
		time.Sleep(time.Second)
	}
	for i, d := range []time.Time{day, day.Add(24 * time.Hour)} {
		id := ctl.HistoryScheduleID() + "-" + d.Add(24*time.Hour+7*time.Hour).Format(time.RFC3339)
		var res workflows.ExportLoadResult
		if err := temporalSrv.Client().GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
			t.Fatalf("day %d: %s: %v (done: %v)", i, id, err, done)
		}
		if want := s.sim.Truth(d, d.Add(24*time.Hour)); res.Rows != int64(len(want.Valid)) {
			t.Errorf("%s loaded %d rows, want the %d of %s", id, res.Rows, len(want.Valid), d.Format(time.DateOnly))
		}
		if i == 0 {
			recordHistory(t, id, "", "history_export")
		}
	}
	s.assertExactlyOnce(since, until)
	b, _ := json.Marshal(done)
	t.Logf("history backfill ran %s", b)
}
