package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// waitWorkflow waits for a workflow (following continue-as-new).
func waitWorkflow(t *testing.T, id string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := temporalSrv.Client().GetWorkflow(ctx, id, "").Get(ctx, out); err != nil {
		t.Fatalf("workflow %s: %v", id, err)
	}
}

func TestScheduledPullsCatchLateEvents(t *testing.T) {
	cfg := simConfig()
	cfg.Faults = ktsim.Faults{ResendRate: 0.5, RateLimitRate: 0.05, ErrorRate: 0.05}
	s := newStack(t, cfg, true)
	// A bound a few commits pass: the refreshes after the pulls fold
	// fact_usage, again over folded rows, and what it sums must stay the
	// fact table's.
	s.wh.SetUsageFoldRows(5)
	var folds atomic.Int64 // fold jobs started
	s.wh.SetStatementObserver(func(st warehouse.Statement) {
		if strings.HasPrefix(st.What, "fold fact_usage") {
			folds.Add(1)
		}
	})
	t.Cleanup(func() { s.wh.SetStatementObserver(nil) })
	ctx := context.Background()
	// Small pages and batches force several batches and a continue-as-new.
	spec := control.ScheduleSpec{Interval: time.Hour, CatchupWindow: time.Hour, Paused: true,
		Pull: workflows.IncrementalPullInput{Start: "30d", PageSize: 150, PagesPerBatch: 2, BatchesPerRun: 2, LateWindow: time.Hour, Tuning: s.tuning}}
	created, err := s.ctl.ApplySchedule(ctx, spec)
	if err != nil || !created {
		t.Fatalf("apply schedule: created=%v %v", created, err)
	}
	// Applying again updates in place.
	if created, err := s.ctl.ApplySchedule(ctx, spec); err != nil || created {
		t.Fatalf("re-apply schedule: created=%v %v", created, err)
	}
	d, err := s.ctl.DescribeSchedule(ctx)
	if err != nil || !d.Schedule.State.Paused {
		t.Fatalf("describe: %+v %v", d, err)
	}

	first, err := s.ctl.TriggerSchedule(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.IncrementalPullResult
	waitWorkflow(t, first, &res)
	s.assertExactlyOnce(time.Time{}, time.Time{})
	if res.Batches < 5 {
		t.Fatalf("first pull: %+v, want several batches across continue-as-new", res)
	}

	// Late events arrive between the two pulls: timestamps minutes old,
	// ingested now. Paging by timestamp would miss them; the cursor not.
	s.sim.Ingest(120, 0.5)
	second, err := s.ctl.TriggerSchedule(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitWorkflow(t, second, &res)
	recordHistory(t, second, "", "incremental_pull")
	if res.Rows+res.Quarantined < 100 {
		t.Fatalf("second pull loaded %+v, want the ~120 new events", res)
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})

	// A third pull with nothing new changes nothing (the resend fault may
	// still serve a few old events again: they must not land twice).
	third, err := s.ctl.TriggerSchedule(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitWorkflow(t, third, &res)
	if res.Rows > 3 {
		t.Fatalf("idle pull staged %d rows, want at most the few resent ones", res.Rows)
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})

	// The schedule was paused past the cursor's 30 days: the server
	// refuses the stored cursor. The pull restarts by time from the
	// checkpoint, late events ingested meanwhile included.
	time.Sleep(1100 * time.Millisecond) // cursors carry whole seconds
	s.sim.SetFaults(ktsim.Faults{ExpireCursorsBefore: time.Now()})
	s.sim.Ingest(80, 0.5)
	fourth, err := s.ctl.TriggerSchedule(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitWorkflow(t, fourth, &res)
	recordHistory(t, fourth, "", "incremental_pull_cursor_reset")
	if res.CursorResets != 1 || res.Rows+res.Quarantined < 80 {
		t.Fatalf("pull after the cursor expired: %+v, want one reset and the ~80 new events", res)
	}
	s.assertExactlyOnce(time.Time{}, time.Time{})
	s.assertUsageSumsTheFacts(ctx)
	if n := folds.Load(); n < 2 {
		t.Errorf("%d folds of fact_usage started over four pulls (bound 5 rows), want at least 2", n)
	} else {
		t.Logf("%d folds of fact_usage started over four pulls", n)
	}

	if err := s.ctl.PauseSchedule(ctx, false, "test"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.ctl.DescribeSchedule(ctx); d.Schedule.State.Paused || len(d.Info.RecentActions) != 4 {
		t.Fatalf("schedule after unpause: paused=%v actions=%d", d.Schedule.State.Paused, len(d.Info.RecentActions))
	}
	s.ctl.Client.ScheduleClient().GetHandle(ctx, s.ctl.ScheduleID).Delete(ctx)
}

func TestBackfillIsResumableAndIdempotent(t *testing.T) {
	cfg := simConfig()
	cfg.Faults = ktsim.Faults{ExportFailRate: 1} // the first run fails every window
	s := newStack(t, cfg, true)
	ctx := context.Background()
	since, until := s.historyWindow()
	// Two windows per run: the backfill continues as new twice.
	in := workflows.BackfillInput{Since: since, Until: until, Window: 24 * time.Hour, Parallelism: 2, MaxWindowsPerRun: 2, Format: "csv", Gzip: true, Tuning: s.tuning}

	run, err := s.ctl.StartBackfill(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.BackfillResult
	if err := run.Get(ctx, &res); err == nil {
		t.Fatal("backfill with failing exports succeeded")
	}

	// The source recovers; the same backfill started again loads it.
	firstRun := run.GetRunID()
	s.sim.SetFaults(ktsim.Faults{DropRate: 0.3})
	// Meanwhile something else (an earlier backfill's child still
	// running) holds the third window's id (the first ones hold no
	// events): the backfill must wait for it and count its rows, not
	// count it as done when it sees the id.
	from, to := since.Add(48*time.Hour), since.Add(72*time.Hour)
	held := workflows.WindowWorkflowID(s.ctl.BackfillID(in), from, to)
	other, err := temporalSrv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: held, TaskQueue: s.tq}, workflows.ExportLoad,
		workflows.ExportLoadInput{Since: from, Until: to, Format: "csv", Gzip: true, Source: "backfill", Tuning: s.tuning})
	if err != nil {
		t.Fatal(err)
	}
	run, err = s.ctl.StartBackfill(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run %s, second run %s", firstRun, run.GetRunID())
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	var otherRes workflows.ExportLoadResult
	if err := other.Get(ctx, &otherRes); err != nil {
		t.Fatal(err)
	}
	truth := s.sim.Truth(since, until)
	if res.Windows != 5 || res.Loaded != 4 || res.Skipped != 1 || otherRes.Rows == 0 ||
		res.Rows != int64(len(truth.Valid)) || res.Quarantined != int64(len(truth.Invalid)) {
		t.Fatalf("second run %+v, want 5 windows: 4 loaded, 1 loaded by another run (%d rows) and counted, %d rows and %d quarantined in all",
			res, otherRes.Rows, len(truth.Valid), len(truth.Invalid))
	}
	// backfill.json keeps the history from before the Selector (version 0);
	// this records today's path.
	recordHistory(t, run.GetID(), run.GetRunID(), "backfill_selector")
	s.assertExactlyOnce(since, until)

	// Started a third time it attaches to the finished backfill: nothing
	// is loaded again.
	run, err = s.ctl.StartBackfill(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	var again workflows.BackfillResult
	if err := run.Get(ctx, &again); err != nil || again != res {
		t.Fatalf("third start: %+v %v, want the finished result %+v", again, err, res)
	}
	s.assertExactlyOnce(since, until)

	// Progress is queryable.
	v, err := temporalSrv.Client().QueryWorkflow(ctx, run.GetID(), "", workflows.ProgressQuery)
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.BackfillProgress
	if err := v.Get(&p); err != nil || p.Loaded != 4 || p.Skipped != 1 {
		t.Fatalf("progress %+v %v", p, err)
	}
}

// assertUsageSumsTheFacts checks that fact_usage, folded at least once,
// sums to the fact table's events, cost and tokens by date and model
// (the dimensions are refreshed from it).
func (s *stack) assertUsageSumsTheFacts(ctx context.Context) {
	s.t.Helper()
	sums := func(sql string) map[string]string {
		out := map[string]string{}
		for _, r := range s.guideQuery(ctx, sql) {
			out[fmt.Sprint(r[0], "/", r[1], "/", r[2])] = fmt.Sprint(r[3:])
		}
		return out
	}
	fact := sums(`SELECT event_date, provider, model, COUNT(*), CAST(SUM(cost_usd) AS STRING), SUM(total_tokens)
FROM fact_ai_event GROUP BY event_date, provider, model`)
	usage := sums(`SELECT event_date, provider, model, SUM(events), CAST(SUM(cost) AS STRING), SUM(tokens)
FROM fact_usage GROUP BY event_date, provider, model HAVING SUM(events) != 0`)
	if len(fact) == 0 {
		s.t.Fatal("fact_usage check: the fact table is empty")
	}
	sameMap(s.t, "fact_usage's sums against the fact table", usage, fact)
	// A fold replaces the folds before it: one folded row a key.
	folded := s.guideQuery(ctx, fmt.Sprintf(`SELECT COUNTIF(chunk = %[1]d), COUNTIF(chunk != %[1]d),
  COUNT(DISTINCT IF(chunk = %[1]d, CONCAT(CAST(event_date AS STRING), '/', provider, '/', model), NULL)) FROM fact_usage`, warehouse.FoldedChunk))
	n, ok := folded[0][0].(int64)
	if !ok || n == 0 || folded[0][2] != folded[0][0] {
		s.t.Errorf("fact_usage: %v folded rows for %v keys, %v not folded; want some folded, one a key", folded[0][0], folded[0][2], folded[0][1])
	}
	s.t.Logf("fact_usage: %v folded rows and %v since, for %d keys", folded[0][0], folded[0][1], len(fact))
}
