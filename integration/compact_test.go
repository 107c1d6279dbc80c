package integration

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/api/iterator"

	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// count runs a COUNT(*) query and returns its one value.
func (s *stack) count(sql string) int64 {
	s.t.Helper()
	ctx := context.Background()
	q := s.bq.Query(sql)
	it, err := q.Read(ctx)
	if err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil && err != iterator.Done {
		s.t.Fatalf("%s: %v", sql, err)
	}
	n, _ := row[0].(int64)
	return n
}

// pendingMarks lists the loads marked pending in the stack's staging.
func (s *stack) pendingMarks() []string {
	s.t.Helper()
	keys, err := staging.Dir{Root: s.staging}.List(context.Background(), "pending")
	if err != nil {
		s.t.Fatal(err)
	}
	return keys
}

// compactOnce triggers the compaction's schedule and waits for the run;
// record names the history to record, if any.
func (s *stack) compactOnce(record string) workflows.CompactResult {
	s.t.Helper()
	id, err := s.ctl.TriggerCompaction(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	var res workflows.CompactResult
	waitWorkflow(s.t, id, &res)
	if record != "" {
		recordHistory(s.t, id, "", record)
	}
	return res
}

// Deferred pulls stage their batches and land them in the live view only;
// the compaction commits them all in one run, exactly once, however often
// the source resends and the pull runs again; then nothing stays pending.
func TestDeferredPullsLandOnceThroughTheCompaction(t *testing.T) {
	cfg := simConfig()
	cfg.Faults = ktsim.Faults{ResendRate: 0.5}
	s := newStack(t, cfg, true)
	ctx := context.Background()
	pull := workflows.IncrementalPullInput{Start: "30d", PageSize: 300, PagesPerBatch: 1, BatchesPerRun: 3, LateWindow: time.Hour, Tuning: s.tuning, Defer: true}
	if _, err := s.ctl.ApplySchedule(ctx, control.ScheduleSpec{Interval: time.Hour, CatchupWindow: time.Hour, Paused: true, Pull: pull}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ctl.ApplyCompactSchedule(ctx, time.Hour, true); err != nil {
		t.Fatal(err)
	}
	trigger := func(record string) workflows.IncrementalPullResult {
		id, err := s.ctl.TriggerSchedule(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.IncrementalPullResult
		waitWorkflow(t, id, &res)
		if record != "" {
			recordHistory(t, id, "", record)
		}
		return res
	}
	first := trigger("incremental_pull_deferred")
	fact := "`" + project + "." + s.dataset + ".fact_ai_event`"
	if n := s.count("SELECT COUNT(*) FROM " + fact); n != 0 {
		t.Fatalf("fact holds %d rows before the compaction, want none: the pull must not commit", n)
	}
	// One mark a batch that pulled something.
	marks := s.pendingMarks()
	if len(marks) < 3 {
		t.Fatalf("pull %+v left pending marks %v, want several", first, marks)
	}
	live := "`" + project + "." + s.dataset + "." + "fact_ai_event_live`"
	if n := s.count("SELECT COUNTIF(NOT committed) FROM " + live); n == 0 {
		t.Error("the live view shows none of the pulled rows before the compaction")
	}

	res := s.compactOnce("compact")
	if res.Loads != len(marks) || res.Rows != first.Rows || len(res.Failed) != 0 {
		t.Fatalf("compaction %+v, want the pull's %d pending loads (%d rows)", res, len(marks), first.Rows)
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})
	if m := s.pendingMarks(); len(m) != 0 {
		t.Fatalf("marks left after the compaction: %v", m)
	}

	// The source resends, late events arrive: pulled again, compacted
	// again, still once each.
	s.sim.Ingest(100, 0.5)
	second := trigger("")
	marks = s.pendingMarks()
	if second.Rows == 0 || len(marks) == 0 {
		t.Fatalf("second pull %+v, marks %v: want the new events pending", second, marks)
	}
	if res := s.compactOnce(""); res.Loads != len(marks) || res.Rows != second.Rows {
		t.Fatalf("compaction %+v, want the second pull's %d loads (%d rows)", res, len(marks), second.Rows)
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})
	// With nothing pending, a run commits nothing.
	if res := s.compactOnce(""); res.Loads != 0 {
		t.Fatalf("idle compaction %+v, want no load", res)
	}
}

// A worker killed while the compaction commits: the restarted worker
// commits the round again, which adds nothing, and every event lands once.
func TestWorkerKilledMidCompaction(t *testing.T) {
	bin := buildWorker(t)
	cfg := simConfig()
	cfg.HistoryEvents = 2400
	s := newStack(t, cfg, false)
	ctx := context.Background()
	w1 := s.startWorkerProcess(bin)
	pull := workflows.IncrementalPullInput{Start: "30d", PageSize: 400, PagesPerBatch: 1, BatchesPerRun: 20, Tuning: s.tuning, Defer: true}
	var pres workflows.IncrementalPullResult
	if err := s.run("pull-"+s.tq, workflows.IncrementalPull, pull, &pres); err != nil {
		t.Fatal(err)
	}
	if len(s.pendingMarks()) < 5 {
		t.Fatalf("pull %+v: want several pending loads", pres)
	}
	id := "compact-killed-" + s.tq
	tuning := s.tuning
	tuning.HeartbeatTimeout = 2 * time.Second
	run, err := temporalSrv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.tq}, workflows.Compact,
		workflows.CompactInput{Tuning: tuning})
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.CompactProgress
	for deadline := time.Now().Add(90 * time.Second); !strings.HasPrefix(p.Phase, "committing"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("compaction never reached its commit: %+v", p)
		}
		if v, err := temporalSrv.Client().QueryWorkflow(ctx, id, "", workflows.ProgressQuery); err == nil {
			v.Get(&p)
		}
	}
	w1.Process.Signal(syscall.SIGKILL)
	w1.Wait()
	t.Logf("killed the worker in phase %q", p.Phase)
	s.startWorkerProcess(bin)
	var res workflows.CompactResult
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := run.Get(ctx2, &res); err != nil {
		t.Fatal(err)
	}
	if res.Rows != pres.Rows {
		t.Fatalf("compaction %+v, want the pull's %d rows", res, pres.Rows)
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})
	if m := s.pendingMarks(); len(m) != 0 {
		t.Fatalf("marks left after the compaction: %v", m)
	}
}

// waitBatchesDone waits until want deliveries were taken and no workflow
// runs, and returns the id and run id of a completed WebhookBatch.
func (s *stack) waitBatchesDone(received *atomic.Int64, want int64) (batch struct{ ID, RunID string }) {
	s.t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
		running, err := s.ctl.ListWorkflows(ctx, "Running", 10)
		if err != nil {
			s.t.Fatal(err)
		}
		if received.Load() == want && len(running) == 0 {
			done, err := s.ctl.ListWorkflows(ctx, "Completed", 10)
			if err != nil {
				s.t.Fatal(err)
			}
			for _, w := range done {
				if w.Type == "WebhookBatch" {
					batch.ID, batch.RunID = w.ID, w.RunID
				}
			}
			return batch
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d deliveries taken, %d batches running", received.Load(), want, len(running))
		}
	}
}

// Deferred webhook batches: every delivery sent twice is staged and
// marked, nothing reaches the fact table until the compaction, which
// commits every event once.
func TestDeferredWebhookBatchesLandOnceThroughTheCompaction(t *testing.T) {
	s, received := twiceDeliveredStack(t, workflows.WebhookBatchInput{Defer: true})
	ctx := context.Background()
	if _, err := s.ctl.ApplyCompactSchedule(ctx, time.Hour, true); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.sim.Ingest(100, 0.2)
		time.Sleep(700 * time.Millisecond)
	}
	batch := s.waitBatchesDone(received, 3)
	fact := "`" + project + "." + s.dataset + ".fact_ai_event`"
	if n := s.count("SELECT COUNT(*) FROM " + fact); n != 0 {
		t.Fatalf("fact holds %d rows before the compaction, want none: the batches must not commit", n)
	}
	marks := s.pendingMarks()
	if len(marks) == 0 {
		t.Fatal("no batch marked its load pending")
	}
	recordHistory(t, batch.ID, batch.RunID, "webhook_batch_deferred")
	if res := s.compactOnce(""); res.Loads != len(marks) || len(res.Failed) != 0 {
		t.Fatalf("compaction %+v, want the %d pending loads", res, len(marks))
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})
	if m := s.pendingMarks(); len(m) != 0 {
		t.Fatalf("marks left after the compaction: %v", m)
	}
}

// Live-only webhook batches (KTPIPE_WEBHOOK_LIVE_ONLY): every delivery,
// sent twice, shows in the live view within its batch and its file is
// removed, but no batch stages, marks or commits anything. The deferred
// pull brings the same events, and the compaction commits them: each valid
// event once in fact, each invalid one once in quarantine.
func TestLiveOnlyWebhooksLandOnceThroughThePull(t *testing.T) {
	s, received := twiceDeliveredStack(t, workflows.WebhookBatchInput{Defer: true, LiveOnly: true})
	ctx := context.Background()
	if _, err := s.ctl.ApplyCompactSchedule(ctx, time.Hour, true); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var jobs []string // what the batches ran on BigQuery besides streaming
	var streams int
	s.wh.SetStatementObserver(func(st warehouse.Statement) {
		mu.Lock()
		defer mu.Unlock()
		if st.Stream != "" {
			streams++
		} else {
			jobs = append(jobs, st.What)
		}
	})
	for range 3 {
		s.sim.Ingest(100, 0.2)
		time.Sleep(700 * time.Millisecond)
	}
	batch := s.waitBatchesDone(received, 3)
	s.wh.SetStatementObserver(nil)
	if len(jobs) != 0 || streams == 0 {
		t.Errorf("the batches ran jobs %q and %d streaming inserts, want only streaming inserts", jobs, streams)
	}
	recordHistory(t, batch.ID, batch.RunID, "webhook_batch_live_only")
	ds := "`" + project + "." + s.dataset + "."
	for _, table := range []string{"fact_ai_event", "raw_events", "load_ledger", "quarantine"} {
		if n := s.count("SELECT COUNT(*) FROM " + ds + table + "`"); n != 0 {
			t.Errorf("%s holds %d rows after the batches, want none: a live-only batch loads nothing", table, n)
		}
	}
	if marks := s.pendingMarks(); len(marks) != 0 {
		t.Errorf("live-only batches marked loads pending: %v", marks)
	}
	if files, err := (staging.Dir{Root: s.staging}).List(ctx, "webhooks"); err != nil || len(files) != 0 {
		t.Errorf("delivery files left after their batches: %v (%v)", files, err)
	}
	truth := s.sim.Truth(time.Time{}, time.Time{})
	if n := s.count("SELECT COUNT(DISTINCT event_id) FROM " + ds + "fact_ai_event_live` WHERE NOT committed"); n != int64(len(truth.Valid)) {
		t.Errorf("the live view shows %d events, want the %d valid ones delivered", n, len(truth.Valid))
	}

	pull := workflows.IncrementalPullInput{Start: "30d", PageSize: 300, PagesPerBatch: 1, BatchesPerRun: 5, LateWindow: time.Hour, Tuning: s.tuning, Defer: true}
	if _, err := s.ctl.ApplySchedule(ctx, control.ScheduleSpec{Interval: time.Hour, CatchupWindow: time.Hour, Paused: true, Pull: pull}); err != nil {
		t.Fatal(err)
	}
	id, err := s.ctl.TriggerSchedule(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pulled workflows.IncrementalPullResult
	waitWorkflow(t, id, &pulled)
	if res := s.compactOnce(""); res.Loads == 0 || len(res.Failed) != 0 {
		t.Fatalf("compaction %+v after pull %+v, want the pull's loads", res, pulled)
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})
	if n := s.count("SELECT COUNTIF(NOT committed) FROM " + ds + "fact_ai_event_live`"); n != 0 {
		t.Errorf("the live view still shows %d events from live_events once fact holds them all", n)
	}
	if n := s.count("SELECT COUNT(*) FROM " + ds + "load_ledger` WHERE load_id LIKE '%webhooks%'"); n != 0 {
		t.Errorf("the ledger holds %d chunks of webhook loads, want none", n)
	}
}

// A set whose commit took effect but whose look never ran (its worker
// died, its retries never came) leaves every commit looking for doubled
// rows until it converges. The compaction's next run commits its loads
// again in a wider set, whose look covers the dead set's chunks and
// records it converged.
func TestCompactionConvergesASetThatDiedBeforeItsLook(t *testing.T) {
	s := newStack(t, simConfig(), true)
	ctx := context.Background()
	pull := workflows.IncrementalPullInput{Start: "30d", PageSize: 300, PagesPerBatch: 1, BatchesPerRun: 3, Tuning: s.tuning, Defer: true}
	var pres workflows.IncrementalPullResult
	if err := s.run("pull-"+s.tq, workflows.IncrementalPull, pull, &pres); err != nil {
		t.Fatal(err)
	}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(s.acts)
	v, err := env.ExecuteActivity(s.acts.PendingLoads, payload.PendingLoadsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var pending payload.PendingLoadsResult
	if err := v.Get(&pending); err != nil {
		t.Fatal(err)
	}
	if len(pending.Loads) < 2 {
		t.Fatalf("pull %+v left %d pending loads, want several", pres, len(pending.Loads))
	}
	// The dead set: the first load committed, its staging tables kept
	// (a merge drops them only after every set converged), and no
	// "converged" row, as a worker killed before its look leaves it.
	first := pending.Loads[0]
	if err := s.wh.CommitLoads(ctx, []warehouse.LoadChunks{{LoadID: first.Manifest.LoadID, Source: first.Source, Chunks: first.Manifest.Chunks}}); err != nil {
		t.Fatal(err)
	}
	commits := "`" + project + "." + s.dataset + ".commit_log`"
	if _, err := s.bq.Query("DELETE FROM " + commits + " WHERE what = 'converged'").Read(ctx); err != nil {
		t.Fatal(err)
	}
	unconverged := "SELECT COUNT(*) FROM (SELECT commit_set FROM " + commits + " GROUP BY commit_set HAVING COUNTIF(what = 'converged') = 0)"
	if n := s.count(unconverged); n != 1 {
		t.Fatalf("%d unconverged sets before the compaction, want the dead one", n)
	}
	// Its key, to follow it: the only set so far.
	it, err := s.bq.Query("SELECT DISTINCT commit_set FROM " + commits).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil {
		t.Fatal(err)
	}
	dead, _ := row[0].(string)

	var res workflows.CompactResult
	if err := s.run("compact-"+s.tq, workflows.Compact, workflows.CompactInput{Tuning: s.tuning}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Loads != len(pending.Loads) || res.Rows != pres.Rows || len(res.Failed) != 0 {
		t.Fatalf("compaction %+v, want the pull's %d loads (%d rows)", res, len(pending.Loads), pres.Rows)
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})
	if n := s.count(unconverged); n != 0 {
		t.Errorf("%d unconverged sets after the compaction, want none: every commit would look for 7 days", n)
	}
	// Converged by the compaction's look over its chunks, not by chance.
	chunks := "`" + project + "." + s.dataset + ".commit_chunks`"
	looks := "`" + project + "." + s.dataset + ".commit_looks`"
	q := s.bq.Query("SELECT (SELECT COUNT(DISTINCT CONCAT(load_id, '/', CAST(chunk AS STRING))) FROM " + chunks + " WHERE commit_set = @dead), " +
		"(SELECT COUNT(*) FROM " + chunks + " k WHERE k.commit_set = @dead AND CONCAT(k.load_id, '/', CAST(k.chunk AS STRING)) NOT IN " +
		"(SELECT CONCAT(l.load_id, '/', CAST(l.chunk AS STRING)) FROM " + looks + " l WHERE l.commit_set = @dead))")
	q.Parameters = []bigquery.QueryParameter{{Name: "dead", Value: dead}}
	if it, err = q.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if err := it.Next(&row); err != nil {
		t.Fatal(err)
	}
	chunksOf, _ := row[0].(int64)
	if unlooked, ok := row[1].(int64); !ok || chunksOf == 0 || unlooked != 0 {
		t.Errorf("the dead set has %d chunks, %v of them not in commit_looks; want some, all looked at", chunksOf, row[1])
	}
}
