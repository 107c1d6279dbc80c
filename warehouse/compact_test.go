package warehouse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/warehouse"
)

// TestCommitLoadsCommitsManyLoadsOnce: the staged chunks of several loads
// commit as one transaction; an event id and an invalid record in two
// loads land once, from the smaller load id, and an id in two chunks of
// that load from its lower chunk (the rows differ, so the row taken
// shows, and fact_usage adds what fact got); the ledger has every (load,
// chunk) with its load's source; committing the set again, or a load
// committed alone before, adds nothing. CheckLoads then counts every load
// in two queries, and sees a row missing from fact.
func TestCommitLoadsCommitsManyLoadsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_loads_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	bad := strings.Replace(event(uuid(103), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1)
	shared := func(cost string) string {
		return event(uuid(100), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", cost)
	}
	loads := map[string][]string{
		"load-m1": {shared("0.01"), event(uuid(101), "2026-11-01T11:00:00Z", "bo", "gpt-4o", "block", "0.02", "pii"), shared("0.07"), bad},
		"load-m2": {shared("0.50"), event(uuid(102), "2026-11-03T01:00:00Z", "cy", "gpt-4o", "allow", "0.01"), bad},
		"load-m3": {event(uuid(104), "2026-11-02T01:00:00Z", "ada", "gpt-4o", "allow", "0.01")},
	}
	sources := map[string]string{"load-m1": "pull", "load-m2": "webhook", "load-m3": "pull"}
	set := map[string]warehouse.LoadChunks{}
	for id, lines := range loads {
		dir, man := split(t, id, 2, lines...)
		for _, c := range man.Chunks {
			stage(t, w, dir, id, c)
		}
		set[id] = warehouse.LoadChunks{LoadID: id, Source: sources[id], Chunks: man.Chunks}
	}
	// load-m3 commits alone first: inside the set it then adds nothing.
	if err := w.CommitBatch(ctx, "load-m3", "pull", set["load-m3"].Chunks); err != nil {
		t.Fatal(err)
	}
	seen := record(w)
	for range 2 { // the second run is a retry after the commit took effect
		// Not in load id order: the smaller load id wins anyway.
		if err := w.CommitLoads(ctx, []warehouse.LoadChunks{set["load-m2"], set["load-m3"], set["load-m1"]}); err != nil {
			t.Fatal(err)
		}
	}
	commits := 0
	for _, s := range seen() {
		if s.What == "commit batch" {
			commits++
		}
	}
	if commits != 1 {
		t.Errorf("%d commit jobs for one set run twice, want 1", commits)
	}
	fact := queryRows(t, fmt.Sprintf("SELECT event_id, load_id, CAST(cost_usd AS STRING) FROM `%s.%s.%s` ORDER BY event_id", project, ds, schemas.TableFact))
	wantFact := fmt.Sprint([][]any{{uuid(100), "load-m1", "0.01"}, {uuid(101), "load-m1", "0.02"}, {uuid(102), "load-m2", "0.01"}, {uuid(104), "load-m3", "0.01"}})
	if fmt.Sprint(fact) != wantFact {
		t.Errorf("fact %v, want %s: the shared event once, from load-m1", fact, wantFact)
	}
	quar := queryRows(t, fmt.Sprintf("SELECT event_id, load_id FROM `%s.%s.%s`", project, ds, schemas.TableQuarantine))
	if fmt.Sprint(quar) != fmt.Sprint([][]any{{uuid(103), "load-m1"}}) {
		t.Errorf("quarantine %v, want %s once, from load-m1", quar, uuid(103))
	}
	usage := queryRows(t, fmt.Sprintf("SELECT SUM(events), CAST(SUM(cost) AS STRING) FROM `%s.%s.%s`", project, ds, schemas.TableUsage))
	if fmt.Sprint(usage) != "[[4 0.05]]" {
		t.Errorf("fact_usage counts %v (events, cost), want 4 and 0.05, what fact got", usage)
	}
	// Each ledger row counts its chunk's rows new to fact: load-m1's
	// second chunk repeats the shared event (0 added), load-m2's first
	// brings it too and one new event (1), its second only a bad record.
	added := map[string][]int{"load-m1": {2, 0}, "load-m2": {1, 0}, "load-m3": {1}}
	var want []string
	for _, id := range []string{"load-m1", "load-m2", "load-m3"} {
		for i, c := range set[id].Chunks {
			want = append(want, fmt.Sprintf("[%s %d %s %d]", id, c.Index, sources[id], added[id][i]))
		}
	}
	ledger := queryRows(t, fmt.Sprintf("SELECT load_id, chunk, source, added FROM `%s.%s.%s` ORDER BY load_id, chunk", project, ds, schemas.TableLedger))
	if got := fmt.Sprint(ledger); got != "["+strings.Join(want, " ")+"]" {
		t.Errorf("ledger %s, want %v", got, want)
	}

	// raw keeps each load's rows: the shared event under both loads.
	seen = record(w)
	chk, err := w.CheckLoads(ctx, []string{"load-m1", "load-m2", "load-m3", "load-none"})
	if err != nil {
		t.Fatal(err)
	}
	wantChk := "map[load-m1:{2 0 3 1} load-m2:{2 0 2 1} load-m3:{1 0 1 0} load-none:{0 0 0 0}]"
	if fmt.Sprint(chk) != wantChk {
		t.Errorf("completeness %v, want %s", chk, wantChk)
	}
	if n := len(seen()); n != 2 {
		t.Errorf("CheckLoads of 4 loads ran %d queries, want 2", n)
	}
	exec(t, fmt.Sprintf("DELETE FROM `%s.%s.%s` WHERE event_id = '%s'", project, ds, schemas.TableFact, uuid(102)))
	chk, err = w.CheckLoads(ctx, []string{"load-m1", "load-m2"})
	if err != nil || chk["load-m2"].MissingInFact != 1 || chk["load-m1"].MissingInFact != 0 {
		t.Fatalf("completeness after deleting %s from fact: %v %v, want load-m2 missing 1, load-m1 none", uuid(102), chk, err)
	}
}

// TestLiveWindowIsSettable: the live view shows the live rows ingested
// within SetLiveWindow's window: a row ingested 90 minutes ago shows
// only once the window is longer than that.
func TestLiveWindowIsSettable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_livewindow_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	now := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	streamLive(t, w, "load-live-a", time.Now(), event(uuid(110), now, "ada", "gpt-4o", "allow", "0.01"), event(uuid(111), now, "bo", "gpt-4o", "allow", "0.01"))
	streamLive(t, w, "load-live-b", time.Now().Add(-90*time.Minute), event(uuid(112), now, "cy", "gpt-4o", "allow", "0.01"))
	live := queryRows(t, fmt.Sprintf("SELECT event_id FROM `%s.%s.%s` ORDER BY event_id", project, ds, schemas.TableLive))
	if fmt.Sprint(live) != fmt.Sprint([][]any{{uuid(110)}, {uuid(111)}, {uuid(112)}}) {
		t.Errorf("%s holds %v, want each row streamed", schemas.TableLive, live)
	}
	view := func() string {
		return fmt.Sprint(queryRows(t, fmt.Sprintf("SELECT event_id, committed FROM `%s.%s.%s` ORDER BY event_id", project, ds, warehouse.LiveView)))
	}
	if got, want := view(), fmt.Sprint([][]any{{uuid(110), false}, {uuid(111), false}}); got != want {
		t.Errorf("live view %s, want %s: the rows of the last hour", got, want)
	}
	w.SetLiveWindow(2 * time.Hour)
	rep, err := w.EnsureSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.ReplacedViews) != fmt.Sprint([]string{warehouse.LiveView}) {
		t.Errorf("views replaced %v, want the live view alone", rep.ReplacedViews)
	}
	if got, want := view(), fmt.Sprint([][]any{{uuid(110), false}, {uuid(111), false}, {uuid(112), false}}); got != want {
		t.Errorf("live view with a 2-hour window %s, want %s", got, want)
	}
}

// streamLive splits lines as load loadID ingested at ingested and streams
// the rows into live_events.
func streamLive(t *testing.T, w *warehouse.Warehouse, loadID string, ingested time.Time, lines ...string) {
	t.Helper()
	dir, man := splitAt(t, loadID, 10, ingested, lines...)
	for _, c := range man.Chunks {
		b, err := os.ReadFile(filepath.Join(dir.Root, filepath.FromSlash(c.Key)))
		if err != nil {
			t.Fatal(err)
		}
		var rows []json.RawMessage
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			rows = append(rows, json.RawMessage(l))
		}
		if err := w.InsertLiveAsStamped(context.Background(), rows); err != nil {
			t.Fatal(err)
		}
	}
}

// With the compaction on (a live window set), the audit's newest event
// is the live view's too; without, the fact table's alone, so that a
// stalled commit still shows as lag.
func TestAuditLagReadsTheLiveViewWithTheCompaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_auditlive_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	newest := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	streamLive(t, w, "load-live-audit", time.Now(), event(uuid(120), newest.Format(time.RFC3339), "ada", "gpt-4o", "allow", "0.01"))
	scope := warehouse.AuditScope{Since: newest.Add(-24 * time.Hour), IntervalStart: newest, IntervalEnd: newest.Add(time.Hour)}
	m, err := measureAudit(ctx, w, scope)
	if err != nil || !m.WarehouseNewest.IsZero() {
		t.Fatalf("without the compaction: newest %s %v, want none (the fact table is empty)", m.WarehouseNewest, err)
	}
	w.SetLiveWindow(2 * time.Hour)
	if m, err = measureAudit(ctx, w, scope); err != nil || !m.WarehouseNewest.Equal(newest) {
		t.Fatalf("with the compaction: newest %s %v, want the live row's %s", m.WarehouseNewest, err, newest)
	}
}
