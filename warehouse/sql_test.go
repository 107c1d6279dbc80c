package warehouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/googleapi"

	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/staging"
)

func TestTableNameIsAlwaysAnIdentifier(t *testing.T) {
	long := strings.Repeat("ktpipe-replay-", 100) // 1,400 bytes
	for _, id := range []string{"export-it-2-01a21986-g0", "a.b/c:d", "x`; DROP TABLE fact; --", "ünï", "", long, strings.Repeat("ü", 600)} {
		name := tableName("stg_", id, 7)
		if !identOK(name) || !strings.HasSuffix(name, "_00007") {
			t.Errorf("tableName(%q) = %q is not a safe identifier", id, name)
		}
	}
	if tableName("stg_", "a-b", 1) == tableName("stg_", "a-b", 2) {
		t.Error("chunks share a staging table")
	}
	if tableName("stg_", long+"a", 1) == tableName("stg_", long+"b", 1) {
		t.Error("two long load ids that differ at their end share a staging table")
	}
}

func TestJobIDsStayWithinBigQuerysBound(t *testing.T) {
	longDataset := strings.Repeat("d", 200)
	longLoad := strings.Repeat("ktpipe-replay-", 100)
	w := &Warehouse{dataset: longDataset}
	commit := w.commitJobID([]LoadChunks{{LoadID: longLoad, Chunks: []staging.Chunk{{Index: 3}}}})
	other := w.commitJobID([]LoadChunks{{LoadID: longLoad + "x", Chunks: []staging.Chunk{{Index: 3}}}})
	if len(commit) <= maxJobID {
		t.Fatalf("the test's commit id is %d bytes: it tests nothing", len(commit))
	}
	a, b := boundJobID(commit), boundJobID(other)
	if last := fmt.Sprintf("%s_r%d", a, maxJobIDs-1); len(last) > maxJobID || !jobIDOK.MatchString(last) {
		t.Errorf("the last successor of a long commit's id is %d bytes or not a job id: %.40q…", len(last), last)
	}
	if a == b {
		t.Error("two long ids that differ at their end share a job id")
	}
	if short := "ktpipe_batch_ds_l1_00000"; boundJobID(short) != short {
		t.Errorf("a short id changed: %q", boundJobID(short))
	}
}

// jobIDOK is BigQuery's rule for a job id: letters, digits, _ and -.
var jobIDOK = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestRefRefusesBadNames(t *testing.T) {
	w := &Warehouse{project: "p-roject", dataset: "ds"}
	if got := w.ref("fact_ai_event"); got != "`p-roject.ds.fact_ai_event`" {
		t.Fatalf("ref = %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("ref accepted a name with a backtick")
		}
	}()
	w.ref("x`y")
}

// TestViewSQLHasNoPlaceholdersLeft checks every view resolves to our
// qualified tables only: values never enter view or statement text.
func TestViewSQLHasNoPlaceholdersLeft(t *testing.T) {
	w := &Warehouse{project: "my-project", dataset: "kt"}
	refs := regexp.MustCompile("`[^`]*`")
	placeholder := regexp.MustCompile(`\{[a-z_]+\}`) // not a regexp's {8}
	for _, v := range allViews() {
		sql := strings.ReplaceAll(w.viewSQL(v), "{columns}", liveColumns(nil))
		if placeholder.MatchString(sql) {
			t.Errorf("%s: unresolved placeholder in %s", v.Name, sql)
		}
		for _, r := range refs.FindAllString(sql, -1) {
			if !strings.HasPrefix(r, "`my-project.kt.") {
				t.Errorf("%s: reference %s outside the dataset", v.Name, r)
			}
		}
	}
}

// TestTableNotFound: a half-dropped table is counted as missing on both
// BigQuery (404) and the emulator (400 "Table not found"), and nothing
// else is.
func TestTableNotFound(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&googleapi.Error{Code: 404, Message: "Not found: Table p:d.stg_x_00000"}, true},
		{fmt.Errorf("count stg_x: %w", &googleapi.Error{Code: 400, Message: "failed to analyze: Table not found: `p.d.stg_x_00000`"}), true},
		{&googleapi.Error{Code: 400, Message: "Syntax error"}, false},
		{&googleapi.Error{Code: 500, Message: "Table not found"}, false},
		{errors.New("Table not found"), false},
		{nil, false},
	} {
		if got := tableNotFound(c.err); got != c.want {
			t.Errorf("tableNotFound(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A live row must outlive the view's window: a partition dropped while
// the view still reads it would hide events not committed yet. An hourly
// partition keeps a row LiveRetention less up to an hour.
func TestLiveRowsOutliveTheLiveView(t *testing.T) {
	for _, c := range []struct {
		window time.Duration
		ok     bool
	}{{DefaultLiveWindow, true}, {bqschema.LiveRetention - time.Hour, true}, {bqschema.LiveRetention - time.Hour + time.Minute, false}, {0, false}} {
		if err := ValidateLiveWindow(c.window); (err == nil) != c.ok {
			t.Errorf("window %s: %v, want ok %v", c.window, err, c.ok)
		}
	}
}

// A chunk's dates go into the ledger row as DATE literals: a set whose
// chunk has dates that do not parse, or that run backwards, is refused
// before any SQL is written.
func TestCommitRefusesChunkDatesThatAreNotDates(t *testing.T) {
	for _, c := range []struct {
		min, max string
		ok       bool
	}{
		{"2026-11-30", "2026-12-01", true},
		{"", "", true}, // a chunk without rows
		{"2026-11-30' OR TRUE --", "2026-11-30", false},
		{"2026-11-30", "x'); DROP TABLE t; --", false},
		{"2026-11-30", "", false},
		{"", "2026-11-30", false},
		{"2026-12-01", "2026-11-30", false},
	} {
		loads := []LoadChunks{{LoadID: "l", Chunks: []staging.Chunk{{Index: 0, Rows: 1, MinDate: c.min, MaxDate: c.max}}}}
		if err := checkLoadSet(loads); (err == nil) != c.ok {
			t.Errorf("dates %q..%q: %v, want accepted %v", c.min, c.max, err, c.ok)
		}
	}
}

// TestCommitNeverReadsAStagedLoadID: BigQuery bills every column a
// statement reads, and a staged row's load id is a long string the
// script already has in @load_ids. Each staging table's whole rows take
// their load's element of @load_ids, by the load's position; no
// statement reads the staged column.
func TestCommitNeverReadsAStagedLoadID(t *testing.T) {
	w := &Warehouse{project: "p", dataset: "d"}
	loads := []LoadChunks{
		{LoadID: "load-a", Source: "pull", Chunks: []staging.Chunk{{Index: 0, Rows: 5, Quarantined: 1, MinDate: "2026-11-30", MaxDate: "2026-11-30"}}},
		{LoadID: "load-b", Source: "webhook", Chunks: []staging.Chunk{{Index: 3, Rows: 5, Quarantined: 1, MinDate: "2026-11-30", MaxDate: "2026-11-30"}}},
	}
	script := w.commitScript(loads)
	if strings.Contains(script, "s.load_id") {
		t.Errorf("the script reads a staged load_id:\n%s", script)
	}
	whole := regexp.MustCompile("SELECT s\\.\\*( REPLACE \\(@load_ids\\[OFFSET\\((\\d+)\\)\\] AS load_id\\))?, (\\d+) AS _load, \\d+ AS _chunk FROM `p\\.d\\.q?stg_load_(\\w)_\\d+` s")
	found := whole.FindAllStringSubmatch(script, -1)
	if len(found) != 6 { // raw, fact, quarantine: a table of each load each
		t.Fatalf("%d whole-row reads of staging tables, want 6:\n%s", len(found), script)
	}
	for _, m := range found {
		want := map[string]string{"a": "0", "b": "1"}[m[4]]
		if m[1] == "" || m[2] != want || m[3] != want {
			t.Errorf("%q: want the load id from @load_ids[OFFSET(%s)] and _load %s", m[0], want, want)
		}
	}
	// The fact insert finds new_rows' rows by event key alone: it must
	// rank a staged key's rows as new_rows did, the first load, then the
	// first chunk.
	ranked := regexp.MustCompile(`(CREATE TEMP TABLE new_rows|INSERT INTO ` + "`p\\.d\\.fact_ai_event`" + `) [^;]*PARTITION BY u\.event_key ORDER BY u\._load, u\._chunk\)`)
	if n := len(ranked.FindAllString(script, -1)); n != 2 {
		t.Errorf("%d of new_rows and the fact insert rank by (_load, _chunk), want both:\n%s", n, script)
	}
}

// A statement's job ends at its caller's deadline (BigQuery's job
// timeout), so a caller that stops waiting leaves no job running beside
// its retry's; without a deadline, or under EnsureSchema, none is set.
func TestAStatementEndsAtItsCallersDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if got := jobTimeout(ctx); got <= 59*time.Minute || got > time.Hour {
		t.Errorf("job timeout %s under an hour's deadline, want about an hour", got)
	}
	if got := jobTimeout(context.Background()); got != 0 {
		t.Errorf("job timeout %s with no deadline, want none", got)
	}
	if got := jobTimeout(context.WithValue(ctx, noJobTimeout{}, true)); got != 0 {
		t.Errorf("job timeout %s for a schema statement, want none", got)
	}
}
