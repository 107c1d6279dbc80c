package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/activities"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/workflows"
)

// stageWithoutMerging downloads and splits an export the way ExportLoad
// does, then stops: a load whose worker died after staging.
func stageWithoutMerging(t *testing.T, s *stack, loadID string, since, until time.Time) payload.Manifest {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(s.acts)
	v, err := env.ExecuteActivity(s.acts.CreateExport, payload.CreateExportInput{IdempotencyKey: loadID, Since: since, Until: until, Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	var exp payload.Export
	v.Get(&exp)
	for !exp.Terminal() {
		time.Sleep(100 * time.Millisecond)
		v, err = env.ExecuteActivity(s.acts.GetExport, exp.ID)
		if err != nil {
			t.Fatal(err)
		}
		v.Get(&exp)
	}
	v, err = env.ExecuteActivity(s.acts.DownloadExport, payload.DownloadInput{LoadID: loadID, Export: exp})
	if err != nil {
		t.Fatal(err)
	}
	var dl payload.DownloadResult
	v.Get(&dl)
	var ids []string
	for _, g := range s.sim.Gateways() {
		ids = append(ids, g.ID)
	}
	v, err = env.ExecuteActivity(s.acts.SplitExport, payload.SplitInput{LoadID: loadID, Source: "export", Key: dl.Key, Format: "json", Gateways: ids})
	if err != nil {
		t.Fatal(err)
	}
	var man payload.Manifest
	v.Get(&man)
	return man
}

// TestReplayFromStagingAndFromSource also runs staging on Cloud Storage
// across two hosts: host A downloads, splits and stages, then dies; the
// replay runs on host B, whose scratch directory is empty, from what A
// left in the bucket.
func TestReplayFromStagingAndFromSource(t *testing.T) {
	s := newStack(t, simConfig(), false)
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "ktpipe-staging"})
	// Two hosts: the same dependencies, each its own staging scratch.
	clone := func(a *activities.Activities) activities.Activities {
		return activities.Activities{API: a.API, Warehouse: a.Warehouse, Store: a.Store, Prices: a.Prices, Users: a.Users,
			ChunkRows: a.ChunkRows, Limits: a.Limits, Metrics: a.Metrics}
	}
	hostA, hostB := clone(s.acts), clone(s.acts)
	hostA.Store = staging.Bucket{Client: gcs.Client(), Name: "ktpipe-staging", Prefix: "ktpipe/", Scratch: staging.Dir{Root: t.TempDir()}}
	hostB.Store = staging.Bucket{Client: gcs.Client(), Name: "ktpipe-staging", Prefix: "ktpipe/", Scratch: staging.Dir{Root: t.TempDir()}}
	s.acts = &hostA
	since, until := s.historyWindow()
	man := stageWithoutMerging(t, s, "died-after-split", since, until)
	s.acts = &hostB
	s.startWorkers()
	if ids, _ := s.wh.FactIDs(context.Background()); len(ids) != 0 {
		t.Fatalf("fact has %d rows before the replay", len(ids))
	}

	var res workflows.ReplayResult
	if err := s.run("replay-staged-"+s.tq, workflows.Replay, workflows.ReplayInput{LoadID: man.LoadID, Tuning: s.tuning}, &res); err != nil {
		t.Fatal(err)
	}
	if res.From != "staging" || res.Rows != man.Rows {
		t.Fatalf("replay %+v, manifest rows %d", res, man.Rows)
	}
	recordHistory(t, s.lastRun.GetID(), s.lastRun.GetRunID(), "replay_staging")
	s.assertExactlyOnce(since, until)

	// The staged files are gone after a good load: replaying the load id
	// again says so clearly and changes nothing.
	err = s.run("replay-staged-again-"+s.tq, workflows.Replay, workflows.ReplayInput{LoadID: man.LoadID, Tuning: s.tuning}, &res)
	if !workflows.HasErrorType(err, payload.ErrTypeNothingStaged) {
		t.Fatalf("second replay from staging: %v, want %s", err, payload.ErrTypeNothingStaged)
	}
	s.assertExactlyOnce(since, until)

	// From the source, twice: still exactly once.
	for i := 0; i < 2; i++ {
		if err := s.run(fmt.Sprintf("replay-window-%d-%s", i, s.tq), workflows.Replay, workflows.ReplayInput{Since: since, Until: until, Tuning: s.tuning}, &res); err != nil {
			t.Fatal(err)
		}
		if res.From != "source" {
			t.Fatalf("replay %+v", res)
		}
	}
	s.assertExactlyOnce(since, until)
}

func TestReconcileFindsAndRepairsGaps(t *testing.T) {
	s := newStack(t, simConfig(), true)
	ctx := context.Background()
	since, until := s.historyWindow()
	var loaded workflows.ExportLoadResult
	if err := s.run("export-"+s.tq, workflows.ExportLoad, workflows.ExportLoadInput{Since: since, Until: until, Tuning: s.tuning}, &loaded); err != nil {
		t.Fatal(err)
	}
	in := workflows.ReconcileInput{Since: since, Until: until, Step: 24 * time.Hour, Tuning: s.tuning}
	var rec workflows.ReconcileResult
	if err := s.run("reconcile-1-"+s.tq, workflows.Reconcile, in, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Windows) != 5 || len(rec.Gaps) != 0 {
		t.Fatalf("after a full load: %d windows, gaps %+v", len(rec.Windows), rec.Gaps)
	}

	// Lose some rows of one day, as a botched manual fix would.
	truth := s.sim.Truth(since, until)
	victims := truth.Valid[:7]
	q := s.bq.Query(fmt.Sprintf("DELETE FROM `%s.%s.fact_ai_event` WHERE event_id IN UNNEST(@ids)", project, s.dataset))
	q.Parameters = []bigquery.QueryParameter{{Name: "ids", Value: victims}}
	if job, err := q.Run(ctx); err != nil {
		t.Fatal(err)
	} else if st, err := job.Wait(ctx); err != nil || st.Err() != nil {
		t.Fatal(err, st.Err())
	}
	in.ReplayGaps = true
	if err := s.run("reconcile-2-"+s.tq, workflows.Reconcile, in, &rec); err != nil {
		t.Fatal(err)
	}
	var missing int64
	for _, g := range rec.Gaps {
		missing += g.Gap - rec.Unplaced
	}
	if len(rec.Gaps) == 0 || len(rec.Replays) != len(rec.Gaps) {
		t.Fatalf("reconcile after losing 7 rows: gaps %+v replays %v", rec.Gaps, rec.Replays)
	}
	recordHistory(t, s.lastRun.GetID(), s.lastRun.GetRunID(), "reconcile_replay_gaps")
	s.assertExactlyOnce(since, until)
	in.ReplayGaps = false
	if err := s.run("reconcile-3-"+s.tq, workflows.Reconcile, in, &rec); err != nil || len(rec.Gaps) != 0 {
		t.Fatalf("after the replays: gaps %+v %v", rec.Gaps, err)
	}
}
