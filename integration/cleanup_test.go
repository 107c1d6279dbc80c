package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// TestCleanupRemovesOldOrphansAndKeepsRunningLoads runs the Cleanup
// workflow on a real worker over a staging directory holding a failed
// load's files, orphans of killed writes and an old webhook delivery
// (all ten days old), beside an equally old file of a load whose workflow
// is still running, a recent failed load and a file that is not
// ktpipe's. Only the first group goes.
func TestCleanupRemovesOldOrphansAndKeepsRunningLoads(t *testing.T) {
	s := newStack(t, simConfig(), true)
	ctx := context.Background()
	c := temporalSrv.Client()

	// A running workflow: a webhook batch still collecting deliveries.
	// Its loads will be named <workflow id>-<run id[:8]>-<round>.
	batchID := s.tq + "-webhooks-cleanup"
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: batchID, TaskQueue: s.tq},
		workflows.WebhookBatch, workflows.WebhookBatchInput{Window: time.Hour, Tuning: s.tuning})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.TerminateWorkflow(context.Background(), batchID, "", "test over") })
	runningLoad := batchID + "-" + run.GetRunID()[:8] + "-0"

	old, recent := time.Now().Add(-10*24*time.Hour), time.Now().Add(-time.Hour)
	files := map[string]struct {
		mod  time.Time
		gone bool
	}{
		"loads/it-failed-load/chunk-00000.ndjson":      {old, true},
		"loads/it-failed-load/manifest.json":           {old, true},
		"exports/it-failed-load/exp-1.data.part":       {old, true},
		"webhooks/.tmp-77":                             {old, true},
		".tmp-88":                                      {old, true},
		"webhooks/old-delivery.json":                   {old, true},
		"loads/" + runningLoad + "/chunk-00000.ndjson": {old, false},
		"loads/it-recent-failure/chunk-00000.ndjson":   {recent, false},
		"notes/keep.txt":                               {old, false},
	}
	for name, f := range files {
		p := filepath.Join(s.staging, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mod, f.mod); err != nil {
			t.Fatal(err)
		}
	}

	var res payload.CleanupResult
	if err := s.run(s.tq+"-cleanup-1", workflows.Cleanup, workflows.CleanupInput{Retention: 7 * 24 * time.Hour}, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("result %+v", res)
	recordHistory(t, s.lastRun.GetID(), s.lastRun.GetRunID(), "cleanup")
	for name, f := range files {
		_, err := os.Stat(filepath.Join(s.staging, filepath.FromSlash(name)))
		if gone := os.IsNotExist(err); gone != f.gone {
			t.Errorf("%s: removed %v, want %v (stat: %v)", name, gone, f.gone, err)
		}
	}
	if res.Files != 6 || res.Bytes != 60 || res.Loads != 1 || res.Deliveries != 1 || res.Temporary != 2 ||
		strings.Join(res.LoadIDs, ",") != "it-failed-load" || res.KeptRunning != 1 || res.KeptRecent != 1 || res.KeptUnknown != 1 || res.More {
		t.Errorf("result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(s.staging, "loads", "it-failed-load")); !os.IsNotExist(err) {
		t.Errorf("the removed load's directory is still there: %v", err)
	}

	// A second run finds nothing more to remove.
	if err := s.run(s.tq+"-cleanup-2", workflows.Cleanup, workflows.CleanupInput{}, &res); err != nil || res.Files != 0 {
		t.Fatalf("second run: removed %d, err %v", res.Files, err)
	}
	// A retention below the minimum fails visibly, removing nothing.
	if err := s.run(s.tq+"-cleanup-3", workflows.Cleanup, workflows.CleanupInput{Retention: time.Hour}, &res); err == nil || !strings.Contains(err.Error(), "below the minimum") {
		t.Fatalf("retention of 1h: %v", err)
	}

	// ktpipe schedule apply creates its own daily schedule for it.
	ctl := &control.Control{Client: c, TaskQueue: s.tq}
	t.Cleanup(func() {
		c.ScheduleClient().GetHandle(context.Background(), ctl.CleanupScheduleID()).Delete(context.Background())
	})
	for i, want := range []bool{true, false} {
		created, err := ctl.ApplyCleanupSchedule(ctx, control.CleanupSpec{Retention: 3 * 24 * time.Hour})
		if err != nil || created != want {
			t.Fatalf("apply #%d: created %v, err %v", i+1, created, err)
		}
	}
	d, err := c.ScheduleClient().GetHandle(ctx, ctl.CleanupScheduleID()).Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if iv := d.Schedule.Spec.Intervals; len(iv) != 1 || iv[0].Every != 24*time.Hour {
		t.Fatalf("clean-up schedule intervals %+v", iv)
	}
	// The retention travels in the scheduled workflow's input.
	act, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || len(act.Args) != 1 {
		t.Fatalf("clean-up schedule action %#v", d.Schedule.Action)
	}
	var in workflows.CleanupInput
	if err := converter.GetDefaultDataConverter().FromPayload(act.Args[0].(*commonpb.Payload), &in); err != nil || in.Retention != 72*time.Hour {
		t.Fatalf("scheduled input %+v (%v), want a retention of 72h", in, err)
	}
}
