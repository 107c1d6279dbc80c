package warehouse_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/warehouse"
)

// measureAudit is what an audit that recounts measures, save the
// completeness count (its window is empty here).
func measureAudit(ctx context.Context, w *warehouse.Warehouse, s warehouse.AuditScope) (warehouse.AuditMeasures, error) {
	res, err := w.MeasureAudit(ctx, payload.AuditWarehouseInput{Scope: s, Completeness: payload.Window{Since: s.Since, Until: s.Since}, Recount: true})
	return res.AuditMeasures, err
}

// The audit's measures on known data: the newest event (an invalid one
// counts: it has arrived), a duplicate in the fact table, a resend, a
// schema violation; and its row is written once however often.
func TestAuditMeasuresAndWritesOnce(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	ctx := context.Background()
	start := time.Now().UTC().Add(-time.Minute)
	now := time.Now().UTC().Truncate(time.Second)
	ts := func(ago time.Duration) string { return now.Add(-ago).Format(time.RFC3339) }
	bad := strings.Replace(event(uuid(4), ts(5*time.Minute), "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1)
	load(t, w, "load-a", 10,
		event(uuid(1), ts(30*time.Minute), "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(2), ts(20*time.Minute), "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(3), ts(10*time.Minute), "ada", "gpt-4o", "allow", "0.01"), bad)
	between := time.Now().UTC()
	load(t, w, "load-b", 10, event(uuid(1), ts(30*time.Minute), "ada", "gpt-4o", "allow", "0.01")) // the source resends 1
	// A duplicate the loads would never write: what the alert guards against.
	copyRowAs(t, ds, schemas.TableFact, bqschema.FactSchema(), "event_id", uuid(2), "outside-ktpipe")

	m, err := measureAudit(ctx, w, warehouse.AuditScope{Since: now.Add(-24 * time.Hour), IntervalStart: start, IntervalEnd: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	want := warehouse.AuditMeasures{WarehouseNewest: now.Add(-5 * time.Minute), FactRows: 4, FactDuplicateRows: 1,
		SourceRecords: 5, SourceResends: 1, SchemaViolations: 1}
	if !m.WarehouseNewest.Equal(want.WarehouseNewest) {
		t.Errorf("warehouse newest %s, want %s", m.WarehouseNewest, want.WarehouseNewest)
	}
	m.WarehouseNewest = want.WarehouseNewest
	if m != want {
		t.Errorf("measures %+v, want %+v", m, want)
	}
	// An interval with only the later load: its one record is a resend,
	// although the id's first load is outside the interval. With only
	// the first load: four records, none sent again.
	for _, c := range []struct {
		name                         string
		start, end                   time.Time
		records, resends, violations int64
	}{
		{"load-b alone", between, now.Add(time.Minute), 1, 1, 0},
		{"load-a alone", start, between, 4, 0, 1},
	} {
		m, err := measureAudit(ctx, w, warehouse.AuditScope{Since: now.Add(-24 * time.Hour), IntervalStart: c.start, IntervalEnd: c.end})
		if err != nil {
			t.Fatal(err)
		}
		if m.SourceRecords != c.records || m.SourceResends != c.resends || m.SchemaViolations != c.violations {
			t.Errorf("%s: %d records, %d resends, %d violations; want %d, %d, %d", c.name,
				m.SourceRecords, m.SourceResends, m.SchemaViolations, c.records, c.resends, c.violations)
		}
	}
	// Outside the interval: no violations, no records.
	m, err = measureAudit(ctx, w, warehouse.AuditScope{Since: now.Add(-24 * time.Hour), IntervalStart: now.Add(time.Minute), IntervalEnd: now.Add(2 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaViolations != 0 || m.SourceRecords != 0 {
		t.Errorf("a later interval: %d violations, %d records, want 0", m.SchemaViolations, m.SourceRecords)
	}

	row := warehouse.AuditRow{AuditedAt: now, APINewest: now, WarehouseNewest: now.Add(-5 * time.Minute), IngestionLagSeconds: 300,
		FactRows: 4, FactDuplicateRows: 1, FactDuplicateRatio: 0.25, SchemaViolations: 1, CompletenessRatio: 0.5}
	for i := 0; i < 2; i++ { // a retried write
		if err := w.AppendAudit(ctx, row); err != nil {
			t.Fatal(err)
		}
	}
	got, err := w.LatestAudit(ctx, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !got.AuditedAt.Equal(now) || got.IngestionLagSeconds != 300 || !got.LagKnown || got.FactRows != 4 || got.FactDuplicateRows != 1 || got.FactDuplicateRatio != 0.25 || got.SchemaViolations != 1 || got.CompletenessRatio != 0.5 {
		t.Errorf("latest audit %+v", got)
	}
	// An audit that found no event at the API: no lag to report.
	later := now.Add(time.Second)
	if err := w.AppendAudit(ctx, warehouse.AuditRow{AuditedAt: later, CompletenessRatio: 1}); err != nil {
		t.Fatal(err)
	}
	if got, err = w.LatestAudit(ctx, now.Add(-time.Hour)); err != nil || !got.AuditedAt.Equal(later) || got.LagKnown {
		t.Errorf("audit without an API event: %+v %v, want the lag unknown", got, err)
	}
	it, err := bq.Query(fmt.Sprintf("SELECT COUNT(*) AS n, COUNTIF(interval_start IS NULL) AS no_start FROM `%s.%s.audit`", project, ds)).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		N       int64
		NoStart int64 `bigquery:"no_start"`
	}
	if err := it.Next(&r); err != nil {
		t.Fatal(err)
	}
	if r.N != 2 || r.NoStart != 2 {
		t.Errorf("audit table: %d rows (%d with a NULL interval_start), want 2 (2): each written once, zero times as NULL", r.N, r.NoStart)
	}
}

// Resends come from the ledger, which records how many of each chunk's
// rows were new to fact; an interval holding a ledger row of an older
// worker (no count) counts from raw instead, as before.
func TestAuditCountsResendsFromTheLedger(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	ts := now.Add(-time.Hour).Format(time.RFC3339)
	start := now.Add(-time.Minute)
	load(t, w, "load-first", 10, event(uuid(71), ts, "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(72), ts, "ada", "gpt-4o", "allow", "0.01"), event(uuid(73), ts, "ada", "gpt-4o", "allow", "0.01"))
	load(t, w, "load-again", 10, event(uuid(71), ts, "ada", "gpt-4o", "allow", "0.01"), event(uuid(74), ts, "ada", "gpt-4o", "allow", "0.01"))
	scope := warehouse.AuditScope{Since: now.Add(-24 * time.Hour), IntervalStart: start, IntervalEnd: time.Now().UTC().Add(time.Minute)}
	m, err := measureAudit(ctx, w, scope)
	if err != nil || m.SourceRecords != 5 || m.SourceResends != 1 {
		t.Fatalf("measures %+v (%v): want 5 records, 1 of them sent again", m, err)
	}
	// Rows without a key, as written outside ktpipe: a copy of one event
	// (made with EventRowSchema's columns, which have no event_key) and
	// another event whose key is cleared. Counted by id: one duplicate;
	// counted by key alone, both key-less rows would look like
	// duplicates (2).
	copyRowAs(t, ds, schemas.TableFact, bqschema.EventRowSchema(), "event_id", uuid(72), "outside-ktpipe")
	exec(t, fmt.Sprintf("UPDATE `%s.%s.%s` SET event_key = NULL WHERE event_id = '%s'", project, ds, schemas.TableFact, uuid(73)))
	if m, err = measureAudit(ctx, w, scope); err != nil || m.FactRows != 5 || m.FactDuplicateRows != 1 {
		t.Fatalf("with rows without a key: %+v (%v), want 5 fact rows, 1 of them a duplicate", m, err)
	}
	// A row as an older worker writes it: no count of rows added, one
	// quarantined record, nothing in raw. Counted from raw: the 5 raw
	// rows and its violation (from the ledger it would be 7).
	addLedgerRow(t, ds, "load-older-worker")
	scope.IntervalEnd = time.Now().UTC().Add(time.Minute)
	if m, err = measureAudit(ctx, w, scope); err != nil || m.SourceRecords != 6 || m.SourceResends != 1 || m.SchemaViolations != 1 {
		t.Fatalf("with an older worker's ledger row: %+v (%v), want 6 records (5 rows, 1 violation), 1 resend", m, err)
	}
}

// auditRowOf is the row the Audit workflow writes of a measure at at.
func auditRowOf(at time.Time, in payload.AuditWarehouseInput, res payload.AuditWarehouseResult) warehouse.AuditRow {
	return warehouse.AuditRow{AuditedAt: at, IntervalStart: in.Scope.IntervalStart, IntervalEnd: in.Scope.IntervalEnd,
		CompletenessStart: in.Completeness.Since, CompletenessEnd: in.Completeness.Until,
		WarehouseNewest: res.WarehouseNewest, FactRows: res.FactRows, FactDuplicateRows: res.FactDuplicateRows, WarehouseCount: res.CompletenessCount,
		CountedAt: res.CountedAt, CountedSince: res.CountedSince, CountedCommits: res.CountedCommits, CountedNewest: res.CountedNewest,
		CountedHours: res.CountedHours, LiveCount: res.LiveCount}
}

// auditInput is what the Audit workflow asks the warehouse at at: the
// audited days from the day before since's, the 5 minutes before at, and
// the completeness hours.
func auditInput(since, at time.Time, hours payload.Window) payload.AuditWarehouseInput {
	return payload.AuditWarehouseInput{Scope: warehouse.AuditScope{Since: since.Truncate(24 * time.Hour).Add(-24 * time.Hour),
		IntervalStart: at.Add(-5 * time.Minute), IntervalEnd: at}, Completeness: hours}
}

// An audit carries its counts while nothing is committed: a row written
// outside ktpipe shows only when an audit recounts, and a commit makes
// the next audit count. The completeness hours moving on are summed from
// the day of hours counted, and counted again past it.
// commit_log is read before the counts: a commit that lands between the
// two is in the counts, and makes the next audit count again.
func TestAuditCarriesItsCountsUntilACommit(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	ctx := context.Background()
	// Audit times at noon, whatever the clock: an audit carries only the
	// same day's counts.
	noon := time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
	hours := payload.Window{Since: noon.Add(-3 * time.Hour), Until: noon.Add(-time.Hour)}
	ts := hours.Since.Add(30 * time.Minute).Format(time.RFC3339)
	load(t, w, "load-a", 10, event(uuid(81), ts, "ada", "gpt-4o", "allow", "0.01"), event(uuid(82), ts, "ada", "gpt-4o", "allow", "0.01"))
	var mu sync.Mutex
	var counts []string   // the counting statements of the audit running
	var beforeFact func() // run as the fact's count starts, once
	w.SetStatementObserver(func(s warehouse.Statement) {
		switch s.What {
		case "audit fact", "audit quarantine", "count fact by window", "count quarantine by window", "count fact", "count quarantine":
			mu.Lock()
			counts = append(counts, s.What)
			f := beforeFact
			beforeFact = nil
			mu.Unlock()
			if s.What == "audit fact" && f != nil {
				f()
			}
		}
	})
	// audit measures at the audit time at, and writes its row as the
	// workflow does; counted lists the counting statements it ran.
	audit := func(at time.Time, hours payload.Window, recount bool) (res payload.AuditWarehouseResult, counted []string) {
		t.Helper()
		mu.Lock()
		counts = nil
		mu.Unlock()
		in := auditInput(noon, at, hours)
		in.Recount = recount
		res, err := w.MeasureAudit(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AppendAudit(ctx, auditRowOf(at, in, res)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return res, counts
	}
	all := "[audit fact audit quarantine count fact by window count quarantine by window]"
	check := func(step string, res payload.AuditWarehouseResult, counted []string, wantCounted string, countedAt time.Time, rows, dups, window int64) {
		t.Helper()
		if fmt.Sprint(counted) != wantCounted || !res.CountedAt.Equal(countedAt) || res.FactRows != rows || res.FactDuplicateRows != dups || res.CompletenessCount != window {
			t.Errorf("%s: counted %v at %s, %d fact rows, %d duplicates, %d in the hours; want counted %s at %s, %d, %d, %d", step,
				counted, res.CountedAt, res.FactRows, res.FactDuplicateRows, res.CompletenessCount, wantCounted, countedAt, rows, dups, window)
		}
	}
	at := func(i int) time.Time { return noon.Add(time.Duration(i) * time.Second) }
	res, counted := audit(at(1), hours, false)
	check("the first audit", res, counted, all, at(1), 2, 0, 2)
	// A copy written outside ktpipe: commit_log does not see it.
	copyRowAs(t, ds, schemas.TableFact, bqschema.FactSchema(), "event_id", uuid(81), "outside-ktpipe")
	res, counted = audit(at(2), hours, false)
	check("nothing committed since", res, counted, "[]", at(1), 2, 0, 2)
	res, counted = audit(at(3), hours, true)
	check("a recount", res, counted, all, at(3), 3, 1, 3)
	load(t, w, "load-b", 10, event(uuid(83), ts, "ada", "gpt-4o", "allow", "0.01"))
	res, counted = audit(at(4), hours, false)
	check("after a commit", res, counted, all, at(4), 4, 1, 4)
	// A commit between the read of commit_log and the counts.
	mu.Lock()
	// In the hours' second hour.
	ts2 := hours.Since.Add(90 * time.Minute).Format(time.RFC3339)
	beforeFact = func() { load(t, w, "load-c", 10, event(uuid(84), ts2, "ada", "gpt-4o", "allow", "0.01")) }
	mu.Unlock()
	res, counted = audit(at(5), hours, true)
	check("a commit while counting", res, counted, all, at(5), 5, 1, 5)
	res, counted = audit(at(6), hours, false)
	check("the audit after it", res, counted, all, at(6), 5, 1, 5)
	// The hours move on: the day of hours counted holds them (load-c's
	// event), and the days' counts carry, so an outside copy shows only
	// in a recount.
	copyRowAs(t, ds, schemas.TableFact, bqschema.FactSchema(), "event_id", uuid(84), "outside-ktpipe")
	next := payload.Window{Since: hours.Since.Add(time.Hour), Until: hours.Until.Add(time.Hour)}
	res, counted = audit(at(7), next, false)
	check("the next hours", res, counted, "[]", at(6), 5, 1, 1)
	// Past the day of hours counted: the hours are counted again, the
	// days' counts carried.
	later := payload.Window{Since: hours.Since.Add(23 * time.Hour), Until: hours.Until.Add(23 * time.Hour)}
	res, counted = audit(at(8), later, false)
	check("past the hours counted", res, counted, "[count fact by window count quarantine by window]", at(6), 5, 1, 0)
	// Hours not whole are counted as a window, not by hour.
	half := payload.Window{Since: hours.Since.Add(30 * time.Minute), Until: hours.Until}
	res, counted = audit(at(9), half, false)
	check("hours not whole", res, counted, "[count fact count quarantine]", at(6), 5, 1, 6)
	res, counted = audit(at(10), next, true)
	check("the next hours, a recount", res, counted, all, at(10), 6, 2, 2)
}

// A carried audit measures the live view's newest afresh: when the live
// rows leave the view's window (a stalled compaction), the newest falls
// back to what fact and quarantine hold, and the lag shows.
func TestACarriedAuditMeasuresTheLiveViewAfresh(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	committed := now.Add(-2 * time.Hour)
	load(t, w, "load-fact", 10, event(uuid(91), committed.Format(time.RFC3339), "ada", "gpt-4o", "allow", "0.01"))
	live := now.Add(-time.Minute)
	// Streamed 10 minutes ago: in a 2-hour window, out of a 5-minute one.
	streamLive(t, w, "load-live", time.Now().Add(-10*time.Minute), event(uuid(92), live.Format(time.RFC3339), "ada", "gpt-4o", "allow", "0.01"))
	w.SetLiveWindow(2 * time.Hour)
	// Audit times at noon, whatever the clock (an audit carries only the
	// same day's counts); the live view's window is the clock's.
	noon := now.Truncate(24 * time.Hour).Add(12 * time.Hour)
	hours := payload.Window{Since: noon.Add(-3 * time.Hour), Until: noon}
	in := func(at time.Time) payload.AuditWarehouseInput { return auditInput(committed, at, hours) }
	first, err := w.MeasureAudit(ctx, in(noon))
	if err != nil || !first.WarehouseNewest.Equal(live) || !first.CountedNewest.Equal(committed) {
		t.Fatalf("first audit: newest %s, counted newest %s (%v); want the live row's %s and fact's %s", first.WarehouseNewest, first.CountedNewest, err, live, committed)
	}
	if err := w.AppendAudit(ctx, auditRowOf(noon, in(noon), first)); err != nil {
		t.Fatal(err)
	}
	// The live row leaves the view's window, and nothing commits.
	w.SetLiveWindow(5 * time.Minute)
	res, err := w.MeasureAudit(ctx, in(noon.Add(time.Second)))
	if err != nil || !res.CountedAt.Equal(noon) || !res.WarehouseNewest.Equal(committed) {
		t.Fatalf("carried audit: counted at %s, newest %s (%v); want carried from %s, newest fact's %s", res.CountedAt, res.WarehouseNewest, err, noon, committed)
	}
}

// An audit carries the newest counts, not the newest audit's: an audit
// begun while a recount counted carried the counts before it, and its
// row is the later; the recount's counts win.
func TestAuditCarriesTheNewestCounts(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	ctx := context.Background()
	noon := time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
	load(t, w, "load-a", 10, event(uuid(95), noon.Add(-2*time.Hour).Format(time.RFC3339), "ada", "gpt-4o", "allow", "0.01"))
	hours := payload.Window{Since: noon.Add(-3 * time.Hour), Until: noon.Add(-time.Hour)}
	in := func(at time.Time) payload.AuditWarehouseInput { return auditInput(noon, at, hours) }
	counted, err := w.MeasureAudit(ctx, payload.AuditWarehouseInput{Scope: in(noon).Scope, Completeness: hours, Recount: true})
	if err != nil {
		t.Fatal(err)
	}
	recount := auditRowOf(noon.Add(5*time.Second), in(noon), counted)
	recount.CountedAt = noon.Add(5 * time.Second)
	stale := recount
	stale.AuditedAt, stale.CountedAt, stale.FactRows = noon.Add(10*time.Second), noon, 999
	for _, r := range []warehouse.AuditRow{recount, stale} {
		if err := w.AppendAudit(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	res, err := w.MeasureAudit(ctx, in(noon.Add(20*time.Second)))
	if err != nil || !res.CountedAt.Equal(recount.CountedAt) || res.FactRows != 1 {
		t.Fatalf("carried %d fact rows counted at %s (%v); want the recount's 1 of %s", res.FactRows, res.CountedAt, err, recount.CountedAt)
	}
}

// carries holds each condition: a row that counted, the same days, no
// commit since; and for the hours' count, counts of each of the hours.
func TestAuditCarriesOnlyTheSameCounts(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	hours := payload.Window{Since: day.Add(7 * time.Hour), Until: day.Add(10 * time.Hour)}
	in := payload.AuditWarehouseInput{Scope: warehouse.AuditScope{Since: day.Add(-24 * time.Hour)}, Completeness: hours}
	prev := warehouse.AuditRow{CountedAt: day.Add(11 * time.Hour), CountedSince: in.Scope.Since, CountedCommits: 7,
		CountedNewest: day.Add(10 * time.Hour), CountedHours: payload.HourCounts{Since: hours.Since, Counts: make([]int64, 24)}}
	if days, hours := warehouse.Carries(prev, in, 7); !days || !hours {
		t.Fatalf("the same days, hours and commits: carried the days' counts %t, the hours' %t; want both", days, hours)
	}
	for name, change := range map[string]func(r *warehouse.AuditRow, in *payload.AuditWarehouseInput, commits *int64){
		"a row of the version before": func(r *warehouse.AuditRow, _ *payload.AuditWarehouseInput, _ *int64) { r.CountedAt = time.Time{} },
		"no event found":              func(r *warehouse.AuditRow, _ *payload.AuditWarehouseInput, _ *int64) { r.CountedNewest = time.Time{} },
		"another first day":           func(_ *warehouse.AuditRow, in *payload.AuditWarehouseInput, _ *int64) { in.Scope.Since = day },
		"a commit since":              func(_ *warehouse.AuditRow, _ *payload.AuditWarehouseInput, n *int64) { *n = 8 },
		"commit_log expired":          func(_ *warehouse.AuditRow, _ *payload.AuditWarehouseInput, n *int64) { *n = 6 },
	} {
		r, in, n := prev, in, int64(7)
		change(&r, &in, &n)
		if days, hours := warehouse.Carries(r, in, n); days || hours {
			t.Errorf("%s: carried the days' counts %t, the hours' %t; want neither", name, days, hours)
		}
	}
	// The hours move on: carried while the counts hold them, counted
	// when they do not.
	for name, tc := range map[string]struct {
		hours payload.Window
		carry bool
	}{
		"the next hours":       {payload.Window{Since: hours.Since.Add(time.Hour), Until: hours.Until.Add(time.Hour)}, true},
		"the day's last hours": {payload.Window{Since: hours.Since.Add(21 * time.Hour), Until: hours.Since.Add(24 * time.Hour)}, true},
		"past the day counted": {payload.Window{Since: hours.Since.Add(22 * time.Hour), Until: hours.Since.Add(25 * time.Hour)}, false},
		"an hour before them":  {payload.Window{Since: hours.Since.Add(-time.Hour), Until: hours.Until}, false},
		"not in whole hours":   {payload.Window{Since: hours.Since.Add(time.Minute), Until: hours.Until}, false},
	} {
		in := in
		in.Completeness = tc.hours
		if days, hours := warehouse.Carries(prev, in, 7); !days || hours != tc.carry {
			t.Errorf("%s: carried the days' counts %t, the hours' %t; want the days' and the hours' %t", name, days, hours, tc.carry)
		}
	}
	r := prev
	r.CountedHours = payload.HourCounts{}
	if days, hours := warehouse.Carries(r, in, 7); !days || hours {
		t.Errorf("no hours counted (a row of the version before): carried the days' counts %t, the hours' %t; want the days' only", days, hours)
	}
}

// Parameters go in the order the SQL first names them (a name that is a
// prefix of another is still told apart); one the SQL does not name
// goes last.
func TestParametersInSQLOrder(t *testing.T) {
	p := func(names ...string) []bigquery.QueryParameter {
		var ps []bigquery.QueryParameter
		for _, n := range names {
			ps = append(ps, bigquery.QueryParameter{Name: n})
		}
		return ps
	}
	got := warehouse.InSQLOrder("SELECT @from_ts, IF(@has, @from, NULL) WHERE x >= @from_ts AND y = @has", p("unused", "from", "has", "from_ts"))
	var names []string
	for _, q := range got {
		names = append(names, q.Name)
	}
	if fmt.Sprint(names) != "[from_ts has from unused]" {
		t.Errorf("order %v, want [from_ts has from unused]", names)
	}
}

// A day's windows counted in one query hold what each window's own count
// holds: the bounds are the windows', an event at an hour's start in
// that hour, the days either side not counted, and a last window cut
// short at Until; and so do a day's hours of fact and quarantine.
func TestCountFactByWindowIsEachWindowsCount(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	ctx := context.Background()
	day := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	var lines []string
	for i, ts := range []string{"2026-11-09T23:59:59.999999Z", "2026-11-10T00:00:00Z", "2026-11-10T00:59:59.999999Z", "2026-11-10T01:00:00Z",
		"2026-11-10T02:30:00Z", "2026-11-10T23:59:59Z", "2026-11-11T00:00:00Z"} {
		lines = append(lines, event(uuid(300+i), ts, "ada", "gpt-4o", "allow", "0.01"))
	}
	load(t, w, "load-windows", 10, lines...)
	for _, steps := range []payload.Steps{
		{Since: day, Until: day.Add(24 * time.Hour), Step: time.Hour},
		{Since: day, Until: day.Add(150 * time.Minute), Step: time.Hour},
		{Since: day.Add(-12 * time.Hour), Until: day.Add(12 * time.Hour), Step: 6 * time.Hour},
	} {
		got, err := w.CountFactByWindow(ctx, steps)
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for s := steps.Since; s.Before(steps.Until); s = s.Add(steps.Step) {
			end := s.Add(steps.Step)
			if end.After(steps.Until) {
				end = steps.Until
			}
			n, err := w.CountFact(ctx, s, end)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, n)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s..%s by %s: %v, want each window's count %v", steps.Since, steps.Until, steps.Step, got, want)
		}
	}
	if got, _ := w.CountFactByWindow(ctx, payload.Steps{Since: day, Until: day.Add(3 * time.Hour), Step: time.Hour}); fmt.Sprint(got) != "[2 1 1]" {
		t.Errorf("the first three hours: %v, want [2 1 1]", got)
	}
	if _, err := w.CountFactByWindow(ctx, payload.Steps{Since: day, Until: day.Add(25 * time.Hour), Step: time.Hour}); err == nil {
		t.Error("25 hours in one query: no error")
	}
	// Each hour's fact and quarantine (CountHours) is each hour's own
	// count (CountWindow): quarantined records in two hours, one of them
	// sent valid since (in fact, so counted there alone).
	load(t, w, "load-quarantined", 10,
		unknownGateway(event(uuid(320), "2026-11-10T00:30:00Z", "ada", "gpt-4o", "allow", "0.01")),
		unknownGateway(event(uuid(321), "2026-11-10T02:10:00Z", "ada", "gpt-4o", "allow", "0.01")),
		unknownGateway(event(uuid(322), "2026-11-10T02:20:00Z", "ada", "gpt-4o", "allow", "0.01")))
	load(t, w, "load-valid-since", 10, event(uuid(322), "2026-11-10T02:20:00Z", "ada", "gpt-4o", "allow", "0.01"))
	hours, err := w.CountHours(ctx, day, 24)
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for h := 0; h < 24; h++ {
		c, err := w.CountWindow(ctx, day.Add(time.Duration(h)*time.Hour), day.Add(time.Duration(h+1)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, c.Fact+c.Quarantined)
	}
	if !hours.Since.Equal(day) || fmt.Sprint(hours.Counts) != fmt.Sprint(want) || want[0] != 3 || want[2] != 3 {
		t.Errorf("hours from %s: %v, want each hour's count %v (3 in the first and third)", hours.Since, hours.Counts, want)
	}
}

// The live view's window is read whole once an hour; the audits between
// read the rows ingested since that read (less LiveLate) and carry the
// newest while a row with it is in the window. A row stamped before that
// bound but streamed after the whole read shows at the next whole one.
func TestAuditReadsTheLiveWindowWholeOnceAnHour(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	w.SetLiveWindow(2 * time.Hour)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	// Audit times at noon, whatever the clock (an audit carries only its
	// day's rows); the live view's window is the clock's.
	noon := now.Truncate(24 * time.Hour).Add(12 * time.Hour)
	hours := payload.Window{Since: noon.Add(-3 * time.Hour), Until: noon}
	stream := func(n int, ts, ingested time.Time) {
		streamLive(t, w, fmt.Sprintf("load-live-%d", n), ingested, event(uuid(400+n), ts.Format(time.RFC3339), "ada", "gpt-4o", "allow", "0.01"))
	}
	step := 0
	// audit measures at the next audit time, after prev (when given) as
	// the latest count, and writes its row.
	audit := func(prev *payload.LiveCount) (live payload.LiveCount, began time.Time) {
		t.Helper()
		step++
		at := noon.Add(time.Duration(step) * time.Second)
		if prev != nil {
			if err := w.AppendAudit(ctx, warehouse.AuditRow{AuditedAt: at, CountedAt: at, LiveCount: *prev}); err != nil {
				t.Fatal(err)
			}
			step++
			at = noon.Add(time.Duration(step) * time.Second)
		}
		in := auditInput(noon, at, hours)
		began = time.Now().UTC().Truncate(time.Microsecond)
		res, err := w.MeasureAudit(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AppendAudit(ctx, auditRowOf(at, in, res)); err != nil {
			t.Fatal(err)
		}
		return res.LiveCount, began
	}
	// check: a zero from wants a whole read (as the audit ran), another
	// the whole read of then carried.
	check := func(name string, got payload.LiveCount, began, newest, from time.Time) {
		t.Helper()
		if whole := !got.LiveCountedAt.Before(began); !got.LiveNewest.Equal(newest) || whole != from.IsZero() || !whole && !got.LiveCountedAt.Equal(from) {
			t.Errorf("%s: newest %s, window read whole at %s; want newest %s, read whole at %s (zero: now)", name, got.LiveNewest, got.LiveCountedAt, newest, from)
		}
	}
	stream(1, now.Add(-50*time.Minute), now.Add(-40*time.Minute))
	stream(2, now.Add(-20*time.Minute), now.Add(-time.Minute))
	var live payload.LiveCount
	first, began := audit(nil)
	check("the first audit", first, began, now.Add(-20*time.Minute), time.Time{})
	if !first.LiveNewestIngested.Equal(now.Add(-time.Minute)) {
		t.Errorf("the first audit: the newest ingested at %s, want %s", first.LiveNewestIngested, now.Add(-time.Minute))
	}
	// Newer, but stamped before the read less LiveLate: not read until
	// the next whole read.
	stream(3, now.Add(-5*time.Minute), now.Add(-30*time.Minute))
	live, began = audit(nil)
	check("stamped early", live, began, now.Add(-20*time.Minute), first.LiveCountedAt)
	// Ingested since, and stamped within LiveLate before the whole read
	// (streamed after it): both read.
	stream(4, now.Add(-10*time.Minute), now)
	stream(6, now.Add(-8*time.Minute), now.Add(-5*time.Minute))
	live, began = audit(nil)
	check("ingested since", live, began, now.Add(-8*time.Minute), first.LiveCountedAt)
	// The newest yet, stamped before what an audit an hour after a whole
	// read reads unless it reads whole.
	stream(5, now.Add(-2*time.Minute), now.Add(-100*time.Minute))
	live, began = audit(&payload.LiveCount{LiveNewest: now.Add(-10 * time.Minute), LiveNewestIngested: now,
		LiveCountedAt: now.Add(-61 * time.Minute)})
	check("an hour after the whole read", live, began, now.Add(-2*time.Minute), time.Time{})
	// A newest whose rows left the window falls; one whose rows are in
	// it is carried.
	live, began = audit(&payload.LiveCount{LiveNewest: now.Add(-time.Minute), LiveNewestIngested: now.Add(-3 * time.Hour),
		LiveCountedAt: now.Add(-time.Minute)})
	check("the newest out of the window", live, began, now.Add(-2*time.Minute), time.Time{})
	live, began = audit(&payload.LiveCount{LiveNewest: now.Add(-time.Minute), LiveNewestIngested: now.Add(-time.Hour),
		LiveCountedAt: now.Add(-time.Minute)})
	check("the newest in the window", live, began, now.Add(-time.Minute), now.Add(-time.Minute))
}

// An audit row reads back as written, every column (each value its own,
// so a value bound to another column shows), and a row of zeros reads
// back as NULLs where a zero means none: the emulator wrote api_count,
// warehouse_count and others as 0 when the statement had IF()s.
func TestAuditRowReadsBackAsWritten(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Second)
	ts := func(n int) time.Time {
		return at.Add(-time.Duration(n)*time.Minute - time.Duration(n)*time.Microsecond)
	}
	full := warehouse.AuditRow{AuditedAt: at, APINewest: ts(1), WarehouseNewest: ts(2), IngestionLagSeconds: 1.25, FactRows: 4,
		CountedHours:      payload.HourCounts{Since: ts(13).Truncate(time.Hour), Counts: []int64{10, 0, 12}},
		FactDuplicateRows: 6, FactDuplicateRatio: 0.06, SourceRecords: 7, SourceResends: 8, SourceResendRatio: 0.08, IntervalStart: ts(3),
		IntervalEnd: ts(4), SchemaViolations: 9, CompletenessStart: ts(5), CompletenessEnd: ts(6), APICount: 3, WarehouseCount: 2,
		CompletenessRatio: 0.5, CountedAt: ts(7), CountedSince: ts(8), CountedCommits: 5, CountedNewest: ts(9),
		LiveCount: payload.LiveCount{LiveNewest: ts(10), LiveNewestIngested: ts(11), LiveCountedAt: ts(12)}, LagKnown: true}
	empty := warehouse.AuditRow{AuditedAt: at.Add(time.Second)}
	for _, r := range []warehouse.AuditRow{full, empty} {
		if err := w.AppendAudit(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := w.AuditHistory(ctx, at.Add(-time.Hour), 2)
	if err != nil || len(rows) != 2 {
		t.Fatalf("read back %d rows, %v", len(rows), err)
	}
	if fmt.Sprintf("%+v", rows[1]) != fmt.Sprintf("%+v", full) {
		t.Errorf("read back\n%+v\nwant\n%+v", rows[1], full)
	}
	if fmt.Sprintf("%+v", rows[0]) != fmt.Sprintf("%+v", empty) {
		t.Errorf("read back\n%+v\nwant\n%+v", rows[0], empty)
	}
	it, err := bq.Query(fmt.Sprintf("SELECT COUNTIF(api_newest IS NULL AND ingestion_lag_seconds IS NULL AND counted_commits IS NULL AND live_counted_at IS NULL AND counted_hours IS NULL) AS n FROM `%s.%s.%s`",
		project, ds, schemas.TableAudit)).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n []bigquery.Value
	if err := it.Next(&n); err != nil || n[0] != int64(1) {
		t.Errorf("rows with the zero values NULL: %v %v, want 1", n, err)
	}
}

// An audit measures from where the audit before it ended: the loads
// committed while an audit was skipped or failed are not left out (the
// guide's alert is on any schema violation).
func TestAuditIntervalStartsWhereTheAuditBeforeEnded(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	ctx := context.Background()
	before := time.Now().UTC().Truncate(time.Second).Add(-time.Second)
	load(t, w, "load-v", 10, strings.Replace(event(uuid(7), before.Format(time.RFC3339), "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1))
	after := time.Now().UTC().Add(time.Second).Truncate(time.Microsecond)
	measure := func(what string, start time.Time, violations int64, wantStart time.Time) {
		t.Helper()
		s := warehouse.AuditScope{Since: before.Add(-24 * time.Hour), IntervalStart: start, IntervalEnd: start.Add(time.Minute)}
		res, err := w.MeasureAudit(ctx, payload.AuditWarehouseInput{Scope: s, Completeness: payload.Window{Since: s.Since, Until: s.Since}, Recount: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.SchemaViolations != violations || !res.IntervalStart.Equal(wantStart) {
			t.Errorf("%s: %d violations from %s, want %d from %s", what, res.SchemaViolations, res.IntervalStart, violations, wantStart)
		}
	}
	measure("no audit before", after, 0, after)
	// The audit before ended ahead of the load; the one after it was
	// skipped.
	prevEnd := before.Add(-time.Minute)
	if err := w.AppendAudit(ctx, warehouse.AuditRow{AuditedAt: prevEnd, IntervalStart: prevEnd.Add(-5 * time.Minute), IntervalEnd: prevEnd, CompletenessRatio: 1}); err != nil {
		t.Fatal(err)
	}
	measure("an audit skipped", after, 1, prevEnd)
	// One run by hand since, ending after the interval's start: the
	// interval is not narrowed to it.
	byHand := after.Add(30 * time.Second)
	if err := w.AppendAudit(ctx, warehouse.AuditRow{AuditedAt: byHand, IntervalStart: byHand.Add(-5 * time.Minute), IntervalEnd: byHand, CompletenessRatio: 1}); err != nil {
		t.Fatal(err)
	}
	measure("an audit run by hand", after, 0, after)
	// Audits stopped for longer than the catch-up: from the start asked.
	late := after.Add(49 * time.Hour)
	measure("after two days without audits", late, 0, late)
}
