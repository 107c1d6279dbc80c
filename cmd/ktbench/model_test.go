package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/warehouse"
)

// The commit's statements, as the warehouse writes them for one chunk
// (table references in full): the narrow anti-join, the fact insert and
// the raw insert.
const (
	factAntiJoinSQL = "CREATE TEMP TABLE new_rows AS SELECT * EXCEPT(_n) FROM (\n" +
		"  SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u.event_key ORDER BY u._load, u._chunk) AS _n FROM (\n" +
		"    SELECT v.*, FROM_HEX(REPLACE(v.event_id, '-', '')) AS event_key FROM (\n" +
		"SELECT s.event_id, s.event_date, s.provider, s.model, s.cost_usd, s.total_tokens, s.`user`, 0 AS _load, 0 AS _chunk FROM `p.d.stg_a_00000` s) v) u\n" +
		"  WHERE u.event_key NOT IN (SELECT f.event_key FROM `p.d.fact_ai_event` f WHERE f.event_date BETWEEN @min_date AND @max_date AND f.event_key IS NOT NULL))\n" +
		"WHERE _n = 1"
	factInsertSQL = "INSERT INTO `p.d.fact_ai_event` SELECT * EXCEPT(_load, _chunk, _n) FROM (\n" +
		"  SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u.event_key ORDER BY u._load, u._chunk) AS _n FROM (\n" +
		"    SELECT v.*, FROM_HEX(REPLACE(v.event_id, '-', '')) AS event_key FROM (\n" +
		"SELECT s.* REPLACE (@load_ids[OFFSET(0)] AS load_id), 0 AS _load, 0 AS _chunk FROM `p.d.stg_a_00000` s) v) u\n" +
		"  WHERE u.event_key IN (SELECT n.event_key FROM new_rows n))\n" +
		"WHERE _n = 1"
	rawInsertSQL = "INSERT INTO `p.d.raw_events` SELECT * EXCEPT(_load, _chunk, _n) FROM (\n" +
		"  SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u._load, u.event_id ORDER BY u._chunk) AS _n FROM (\n" +
		"SELECT s.* REPLACE (@load_ids[OFFSET(0)] AS load_id), 0 AS _load, 0 AS _chunk FROM `p.d.stg_a_00000` s\n" +
		"UNION ALL SELECT s.* REPLACE (@load_ids[OFFSET(0)] AS load_id), 0 AS _load, 1 AS _chunk FROM `p.d.stg_a_00001` s) u)\n" +
		"WHERE _n = 1 AND CONCAT(load_id, '/', event_id) NOT IN (SELECT CONCAT(r.load_id, '/', r.event_id) FROM `p.d.raw_events` r\n" +
		"  WHERE r.load_id IN UNNEST(@load_ids) AND r.event_date BETWEEN @min_date AND @max_date)"
	// A checkpoint write.
	checkpointSQL = "INSERT INTO `p.d.pipeline_state` (key, value, updated_at) VALUES (@key, @value, CURRENT_TIMESTAMP())"
)

func TestModelScalesStatementsByLayout(t *testing.T) {
	in := defaultModelInputs()
	w := widths{"event": {}, "quarantine": {}}
	for _, c := range eventCols {
		w["event"][c] = 10
	}
	w["event"]["event_id"], w["event"]["event_date"] = 38, 8
	w["fact"] = map[string]float64{"event_key": 18, "event_date": 8}
	stmts := []observedStmt{{Scope: "commit", Job: true, SQL: factAntiJoinSQL}, {Scope: "commit", SQL: factInsertSQL}, {Scope: "chunk", Job: true, Load: "stg_load_00000"}}
	in.BatchChunks = 1 // one commit a chunk, the design before batches
	p := shape("pull", 1e8, in)
	if p.CommitsPerDay != 24*84 || p.RunsPerDay != 24*5 {
		t.Fatalf("pull at 100M/day: %v commits, %v runs; want 2016 and 120", p.CommitsPerDay, p.RunsPerDay)
	}
	c, err := cost(p, stmts, w, in)
	if err != nil {
		t.Fatal(err)
	}
	// Per commit: the chunk's rows in the narrow columns (the anti-join),
	// then in every column but load_id with new_rows' keys (the fact
	// insert), and half a day's partition of fact's event_key and
	// event_date. The narrow read and new_rows' keys are under the 10 MB
	// minimum, so each is billed at 10 MB.
	rows := 1e8 / p.CommitsPerDay
	narrow := 38 + 8 + 5*10.0
	whole := rowWidth(w["event"]) - w["event"]["load_id"]
	scanned := rows*narrow + 0.5*1e8*(18+8) + rows*whole + rows*18
	billed := math.Max(rows*narrow, minTableBytes) + 0.5*1e8*(18+8) + rows*whole + math.Max(rows*18, minTableBytes)
	if math.Abs(c.BytesScanned-p.CommitsPerDay*scanned) > 1 || math.Abs(c.BytesBilled-p.CommitsPerDay*billed) > 1 {
		t.Fatalf("bytes scanned %.0f, billed %.0f, want %.0f and %.0f", c.BytesScanned, c.BytesBilled, p.CommitsPerDay*scanned, p.CommitsPerDay*billed)
	}
	if c.DML["fact_ai_event"] != p.CommitsPerDay || c.Mutating["fact_ai_event"] != 0 || c.LoadJobs != p.ChunksPerDay || c.QueryJobs != p.CommitsPerDay {
		t.Fatalf("counts %+v", c)
	}
	// Batches of chunks: an export of 1,000 chunks (1B events, whose
	// chunks grow to at most 1M rows) is 5 commits, and costs less than
	// 1,000 (the load jobs stay one a chunk).
	e1 := shape("export", 1e9, in)
	in.BatchChunks = 200
	e200 := shape("export", 1e9, in)
	if e1.CommitsPerDay != 1000 || e200.CommitsPerDay != 5 {
		t.Fatalf("export commits %v and %v, want 1000 and 5", e1.CommitsPerDay, e200.CommitsPerDay)
	}
	c1, err := cost(e1, stmts, w, in)
	if err != nil {
		t.Fatal(err)
	}
	c200, err := cost(e200, stmts, w, in)
	if err != nil {
		t.Fatal(err)
	}
	if c200.DML["fact_ai_event"] != 5 || c200.LoadJobs != 1000 || c200.BytesScanned >= c1.BytesScanned {
		t.Fatalf("batches of 200: %v fact DML, %v load jobs, %v bytes (one a chunk: %v)", c200.DML["fact_ai_event"], c200.LoadJobs, c200.BytesScanned, c1.BytesScanned)
	}
}

// The compacted design: the pull's and webhook batches' chunks, every
// event through both paths, committed by the compaction's runs in
// transactions of BatchChunks; a commit's union of staging tables bills
// 10 MB a table at least, and reads what its chunks hold.
func TestModelCompactsPullAndWebhookLoads(t *testing.T) {
	in := defaultModelInputs()
	w := widths{"event": {"event_id": 38}, "fact": {"event_key": 18}}
	pull, hook, p := shape("pull", 1e6, in), shape("webhook", 1e6, in), shape("compacted", 1e6, in)
	if p.LoadsPerDay != pull.LoadsPerDay+hook.LoadsPerDay || p.ChunksPerDay != pull.ChunksPerDay+hook.ChunksPerDay ||
		p.RunsPerDay != 6 || p.CommitsPerDay != 6 || p.CommittedRows != 2e6 || p.PullLoadsPerDay != 24 || p.PullRunsPerDay != 24 {
		t.Fatalf("compacted at 1M/day: %+v; want 6 runs of 1 commit (244 chunks a run, 480 a commit), 2M rows", p)
	}
	stmts := []observedStmt{{Scope: "commit", Job: true, SQL: rawInsertSQL}, {Scope: "pullload", SQL: checkpointSQL}}
	c, err := cost(p, stmts, w, in)
	if err != nil {
		t.Fatal(err)
	}
	// A commit reads its 2M/6 rows' ids from the staging tables, billed
	// 10 MB a table (244 of them), and the ids raw holds for its loads:
	// none, since each load fits one commit (the table is billed 10 MB).
	perCommit := 2e6 / 6 * 38.0
	billed := (p.ChunksPerDay/6)*minTableBytes + minTableBytes
	if math.Abs(c.BytesScanned-6*perCommit) > 1 || math.Abs(c.BytesBilled-6*billed) > 1 {
		t.Fatalf("scanned %.0f, billed %.0f; want %.0f read and %.0f billed (10 MB a staging table)", c.BytesScanned, c.BytesBilled, 6*perCommit, 6*billed)
	}
	if c.DML["pipeline_state"] != 24 {
		t.Errorf("checkpoint writes %v a day, want one a pull load (24)", c.DML["pipeline_state"])
	}
	// A day's export at 100M is one load whose chunks grow to 208,334
	// rows (warehouse.ChunkRowsFor), 480 of them: one commit, whose guard
	// finds nothing of the load in raw. At 1B the chunks stop at 1M
	// rows: 1,000 chunks in 3 commits, 480 each and the rest, whose
	// guards find the earlier ones' 0, 480 and 960 chunks in raw.
	raw := []observedStmt{{Scope: "commit", Job: true, SQL: rawInsertSQL}}
	for _, tc := range []struct{ events, commits, want float64 }{
		{1e8, 1, 1e8 * 38},
		{1e9, 3, 1e9*38 + (0+1+2)*480*1e6*38},
	} {
		e := shape("export", tc.events, in)
		if c, err = cost(e, raw, w, in); err != nil {
			t.Fatal(err)
		}
		if e.CommitsPerDay != tc.commits || math.Abs(c.BytesScanned-tc.want) > 1 {
			t.Errorf("an export of %.0f: raw inserts scanned %.0f a day in %v commits, want %.0f in %v", tc.events, c.BytesScanned, e.CommitsPerDay, tc.want, tc.commits)
		}
	}
	// A compaction round checks its loads together: the check reads every
	// load of the round in raw, a round's share of the day's rows.
	check := observedStmt{Scope: "round", Job: true, SQL: "SELECT r.load_id, COUNT(*) AS raw_rows,\n" +
		"  COUNTIF(FROM_HEX(REPLACE(r.event_id, '-', '')) NOT IN (SELECT f.event_key FROM `p.d.fact_ai_event` f WHERE f.event_date BETWEEN @min_date AND @max_date AND f.event_key IS NOT NULL)) AS missing\n" +
		"FROM `p.d.raw_events` r WHERE r.load_id IN UNNEST(@load_ids)\nGROUP BY r.load_id"}
	if c, err = cost(p, []observedStmt{check}, w, in); err != nil {
		t.Fatal(err)
	}
	if want := 6 * (2e6/6*38 + 0.5*1e6*18); math.Abs(c.BytesScanned-want) > 1 {
		t.Errorf("a round's check scanned %.0f a day, want %.0f (its loads' raw ids and half a day of fact keys, 6 rounds)", c.BytesScanned, want)
	}
	// At 100M through both paths a run's 576 loads (816 chunks) pass
	// CompactLoads: a round of 500 loads (708 chunks, 2 commits) and one
	// of the rest (1 commit), each checked.
	big := shape("compacted", 1e8, in)
	if big.RoundsPerDay != 12 || big.CommitsPerDay != 18 {
		t.Errorf("compacted at 100M/day: %v rounds and %v commits a day, want 12 and 18", big.RoundsPerDay, big.CommitsPerDay)
	}
}

// Webhooks live only: the compaction commits the pull's loads alone, each
// event once, so the day costs what the pull compacted costs, not what
// both paths' loads do.
func TestModelLiveOnlyWebhooksCommitThePullsLoads(t *testing.T) {
	in := defaultModelInputs()
	for _, n := range []float64{1e6, 1e8} {
		live, pull, both := shape("live only compacted", n, in), shape("pull compacted", n, in), shape("compacted", n, in)
		live.Path, pull.Path = "", ""
		if live != pull {
			t.Errorf("at %.0f/day live only %+v, want the pull compacted's %+v", n, live, pull)
		}
		if live.LoadsPerDay >= both.LoadsPerDay || live.CommittedRows != n || both.CommittedRows != 2*n {
			t.Errorf("at %.0f/day live only commits %v rows in %v loads, both paths %v in %v", n, live.CommittedRows, live.LoadsPerDay, both.CommittedRows, both.LoadsPerDay)
		}
	}
}

func TestModelRefusesAStatementWithoutRule(t *testing.T) {
	_, err := cost(shape("export", 1e6, defaultModelInputs()), []observedStmt{{Scope: "load", Job: true, SQL: "SELECT * FROM `p.d.fact_ai_event`"}}, widths{}, defaultModelInputs())
	if err == nil || !strings.Contains(err.Error(), "no rule") {
		t.Fatalf("err %v, want no rule", err)
	}
}

// A removal of doubled rows logs itself in commit_log (not in the run,
// which doubles nothing): the model has its rule for the statement, as
// splitScript hands it over.
func TestModelHasTheRemovalsLogRule(t *testing.T) {
	r, err := ruleFor("INSERT INTO `p.d.commit_log` (commit_set, what, ledger_rows, chunks_added, logged_at) SELECT @commit_set, 'removed', 0, 0, CURRENT_TIMESTAMP()")
	if err != nil || r.Name != "converge: log the removal" || r.Target != "commit_log" {
		t.Fatalf("rule %+v (%v)", r, err)
	}
}

func TestSplitScriptAndNormalize(t *testing.T) {
	parts := splitScript("BEGIN TRANSACTION;\n" + factAntiJoinSQL + ";\n" + factInsertSQL + ";\nCOMMIT TRANSACTION;\n")
	if len(parts) != 2 {
		t.Fatalf("parts %q", parts)
	}
	if got := normalizeSQL(parts[0]); !strings.HasPrefix(got, "CREATE TEMP TABLE new_rows AS SELECT * EXCEPT(_n) FROM ( SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u.event_key ORDER BY u._load, u._chunk) AS _n FROM ( SELECT v.*, FROM_HEX(REPLACE(v.event_id, '-', '')) AS event_key FROM ( SELECT s.event_id, s.event_date, s.provider, s.model, s.cost_usd, s.total_tokens, s.`user`, 0 AS _load, 0 AS _chunk FROM stg s) v) u") {
		t.Fatalf("normalized %q", got)
	}
}

// Operations: an audit that counts reads its days of fact partitions
// (today's half full on average, and the day before), once a day and
// once after each commit; every audit, KTPIPE_AUDIT_INTERVAL apart, reads
// the interval's (from raw, which holds what the paths committed: twice
// the events through both); the reconcile's windows of a day read its
// closed partition, once.
func TestModelCountsTheOperations(t *testing.T) {
	in := defaultModelInputs()
	w := widths{"event": {"event_id": 38, "event_timestamp": 8, "event_date": 8, "load_id": 58, "ingested_at": 8},
		"fact": {"event_id": 38, "event_timestamp": 8, "event_date": 8, "event_key": 18}}
	audit := observedStmt{Scope: "days", Job: true, SQL: "SELECT MAX(event_timestamp) AS newest, COUNT(*) AS n,\n  COUNT(DISTINCT event_key) AS ids, COUNTIF(event_key IS NULL) AS unkeyed\nFROM `p.d.fact_ai_event` WHERE event_date >= @from"}
	window := observedStmt{Scope: "reconcile", Job: true, SQL: "SELECT DIV(TIMESTAMP_DIFF(event_timestamp, @since, MICROSECOND), @step_us) AS w, COUNT(*) AS n\nFROM `p.d.fact_ai_event` WHERE event_date BETWEEN @lo AND @hi AND event_timestamp >= @since AND event_timestamp < @until\nGROUP BY w"}
	p := shape("pull compacted", 1e8, in)
	c, err := cost(p, []observedStmt{audit, window}, w, in)
	if err != nil {
		t.Fatal(err)
	}
	audits := float64(24*60) / 5
	counts := 1 + p.CommitsPerDay
	if counts >= audits {
		t.Fatalf("%v commits a day: every audit counts", p.CommitsPerDay)
	}
	want := counts*1.5*1e8*(8+18+8) + 1e8*(8+8)
	if c.QueryJobs != counts+1 || math.Abs(c.BytesScanned-want) > 1 {
		t.Fatalf("operations: %v jobs, %.0f bytes; want %v and %.0f", c.QueryJobs, c.BytesScanned, counts+1, want)
	}
	// The live view's newest: its whole window once an hour, and the
	// audits between what was ingested since (half an hour on average)
	// and LiveLate before; each from its first hour partition's top.
	liveSQL := "SELECT event_timestamp AS newest, MAX(ingested_at) AS ingested\nFROM `p.d.live_events` WHERE ingested_at >= @live_since\nGROUP BY event_timestamp ORDER BY event_timestamp DESC LIMIT 1"
	live, err := cost(p, []observedStmt{{Scope: "livewhole", Job: true, SQL: liveSQL}, {Scope: "audit", Job: true, SQL: liveSQL}}, w, in)
	if err != nil {
		t.Fatal(err)
	}
	whole := float64(warehouse.LiveWindowFor(in.CompactEvery)+30*time.Minute) / float64(24*time.Hour)
	since := float64(time.Hour+warehouse.LiveLate) / float64(24*time.Hour)
	if want := (24*whole + (audits-24)*since) * 1e8 * (8 + 8); math.Abs(live.BytesScanned-want) > 1 {
		t.Fatalf("the live view's newest read %.0f, want %.0f", live.BytesScanned, want)
	}
	resends := observedStmt{Scope: "audit", Job: true, SQL: "WITH loads AS (\n  SELECT load_id, quarantined FROM `p.d.load_ledger` WHERE committed_at >= @start AND committed_at < @end\n" +
		"), interval_loads AS (\n  SELECT DISTINCT load_id FROM loads\n), per_id AS (\n  SELECT COUNTIF(l.load_id IS NOT NULL) AS mine\n" +
		"  FROM `p.d.raw_events` r LEFT JOIN interval_loads l ON l.load_id = r.load_id\n  WHERE r.event_date >= @from\n  GROUP BY r.event_id\n)\nSELECT 1"}
	one, err := cost(shape("pull compacted", 1e8, in), []observedStmt{resends}, w, in)
	if err != nil {
		t.Fatal(err)
	}
	both, err := cost(shape("compacted", 1e8, in), []observedStmt{resends}, w, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := audits * 1.5 * 1e8 * (58 + 8 + 38 + 8); math.Abs(one.BytesScanned-want) > 1 || math.Abs(both.BytesScanned-2*want) > 1 {
		t.Fatalf("resends read %.0f (one path), %.0f (both); want %.0f and twice it", one.BytesScanned, both.BytesScanned, want)
	}
}

// A count of the last closed hour reads today's partition, as full as
// the day is old (half, on average), and in the day's first hour
// yesterday's whole partition too (only it at midnight).
func TestWindowPartitions(t *testing.T) {
	want := 719.5/1440 + 60.0/1440
	if got := windowPartitions(0, 1); math.Abs(got-want) > 1e-9 {
		t.Fatalf("windowPartitions(0, 1) = %v, want %v", got, want)
	}
	// A day back: yesterday's whole partition, and the day before's too
	// in the day's first hour but at midnight, when the window is all
	// the day before.
	if got := windowPartitions(24*time.Hour, 1); math.Abs(got-(1+59.0/1440)) > 1e-9 {
		t.Fatalf("a day back: %v, want 1 + 59/1440", got)
	}
	// A day from an hour back: today's, half full on average, and
	// yesterday's in the day's first hour; tomorrow's holds nothing.
	if got, want := windowPartitions(-23*time.Hour, 24), 719.5/1440+60.0/1440; math.Abs(got-want) > 1e-9 {
		t.Fatalf("a day from an hour back: %v, want %v", got, want)
	}
}
