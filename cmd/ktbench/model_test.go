package main

import (
	"math"
	"strings"
	"testing"
)

// The commit's fact anti-join and insert, as the warehouse writes them
// (table references in full).
const (
	factAntiJoinSQL = "CREATE TEMP TABLE new_rows AS SELECT * EXCEPT(_chunk, _n) FROM (\n" +
		"  SELECT b.*, ROW_NUMBER() OVER (PARTITION BY b.event_id ORDER BY b.load_id, b._chunk) AS _n FROM batch_rows b\n" +
		"  WHERE b.event_id NOT IN (SELECT f.event_id FROM `p.d.fact_ai_event` f WHERE f.event_date BETWEEN @min_date AND @max_date))\n" +
		"WHERE _n = 1"
	factInsertSQL = "INSERT INTO `p.d.fact_ai_event` SELECT n.* FROM new_rows n WHERE n.load_id IN UNNEST(@load_ids)"
	// The commit's read of its staging tables (two chunks), and a
	// checkpoint write.
	stagedRowsSQL = "CREATE TEMP TABLE batch_rows AS\nSELECT * EXCEPT(_n) FROM (\n" +
		"  SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u.load_id, u.event_id ORDER BY u._chunk) AS _n FROM (\n" +
		"SELECT s.*, 0 AS _chunk FROM `p.d.stg_a_00000` s\nUNION ALL SELECT s.*, 1 AS _chunk FROM `p.d.stg_a_00001` s) u)\n" +
		"WHERE _n = 1 AND load_id IN UNNEST(@load_ids)"
	checkpointSQL = "INSERT INTO `p.d.pipeline_state` (key, value, updated_at) VALUES (@key, @value, CURRENT_TIMESTAMP())"
)

func TestModelScalesStatementsByLayout(t *testing.T) {
	in := defaultModelInputs()
	w := widths{"event": {}, "quarantine": {}}
	for _, c := range eventCols {
		w["event"][c] = 10
	}
	w["event"]["event_id"], w["event"]["event_date"] = 38, 8
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
	// Per commit: the batch's rows, every column, twice (into new_rows,
	// then into fact), and half a day's partition of fact's event_id and
	// event_date.
	rows := 1e8 / p.CommitsPerDay
	want := p.CommitsPerDay * (2*math.Max(rows*rowWidth(w["event"]), minTableBytes) + 0.5*1e8*(38+8))
	if math.Abs(c.BytesBilled-want) > 1 || math.Abs(c.BytesScanned-want) > 1 { // each read over the minimum
		t.Fatalf("bytes scanned %.0f, billed %.0f, want %.0f", c.BytesScanned, c.BytesBilled, want)
	}
	if c.DML["fact_ai_event"] != p.CommitsPerDay || c.Mutating["fact_ai_event"] != 0 || c.LoadJobs != p.ChunksPerDay || c.QueryJobs != p.CommitsPerDay {
		t.Fatalf("counts %+v", c)
	}
	// Batches of chunks: an export of 2,000 chunks is 10 commits, and
	// costs less than 2,000 (the load jobs stay one a chunk).
	e1 := shape("export", 1e8, in)
	in.BatchChunks = 200
	e200 := shape("export", 1e8, in)
	if e1.CommitsPerDay != 2000 || e200.CommitsPerDay != 10 {
		t.Fatalf("export commits %v and %v, want 2000 and 10", e1.CommitsPerDay, e200.CommitsPerDay)
	}
	c1, err := cost(e1, stmts, w, in)
	if err != nil {
		t.Fatal(err)
	}
	c200, err := cost(e200, stmts, w, in)
	if err != nil {
		t.Fatal(err)
	}
	if c200.DML["fact_ai_event"] != 10 || c200.LoadJobs != 2000 || c200.BytesScanned >= c1.BytesScanned {
		t.Fatalf("batches of 200: %v fact DML, %v load jobs, %v bytes (one a chunk: %v)", c200.DML["fact_ai_event"], c200.LoadJobs, c200.BytesScanned, c1.BytesScanned)
	}
}

// The compacted design: the pull's and webhook batches' chunks, every
// event through both paths, committed by the compaction's runs in
// transactions of BatchChunks; a commit's union of staging tables bills
// 10 MB a table at least, and reads what its chunks hold.
func TestModelCompactsPullAndWebhookLoads(t *testing.T) {
	in := defaultModelInputs()
	w := widths{"event": {"event_id": 38}}
	pull, hook, p := shape("pull", 1e6, in), shape("webhook", 1e6, in), shape("compacted", 1e6, in)
	if p.LoadsPerDay != pull.LoadsPerDay+hook.LoadsPerDay || p.ChunksPerDay != pull.ChunksPerDay+hook.ChunksPerDay ||
		p.RunsPerDay != 6 || p.CommitsPerDay != 12 || p.CommittedRows != 2e6 || p.PullLoadsPerDay != 24 || p.PullRunsPerDay != 24 {
		t.Fatalf("compacted at 1M/day: %+v; want 6 runs of 2 commits (244 chunks a run, 200 a commit), 2M rows", p)
	}
	ids := []observedStmt{{Scope: "commit", Job: true, SQL: stagedRowsSQL}, {Scope: "pullload", SQL: checkpointSQL}}
	c, err := cost(p, ids, w, in)
	if err != nil {
		t.Fatal(err)
	}
	perCommit := 2e6 / 12 * 38
	if math.Abs(c.BytesScanned-12*perCommit) > 1 || math.Abs(c.BytesBilled-12*(p.ChunksPerDay/12)*minTableBytes) > 1 {
		t.Fatalf("scanned %.0f, billed %.0f; want %.0f read and 10 MB a staging table billed", c.BytesScanned, c.BytesBilled, 12*perCommit)
	}
	if c.DML["pipeline_state"] != 24 {
		t.Errorf("checkpoint writes %v a day, want one a pull load (24)", c.DML["pipeline_state"])
	}
}

func TestModelRefusesAStatementWithoutRule(t *testing.T) {
	_, err := cost(shape("export", 1e6, defaultModelInputs()), []observedStmt{{Scope: "load", Job: true, SQL: "SELECT * FROM `p.d.fact_ai_event`"}}, widths{}, defaultModelInputs())
	if err == nil || !strings.Contains(err.Error(), "no rule") {
		t.Fatalf("err %v, want no rule", err)
	}
}

func TestSplitScriptAndNormalize(t *testing.T) {
	parts := splitScript("BEGIN TRANSACTION;\n" + factAntiJoinSQL + ";\n" + factInsertSQL + ";\nCOMMIT TRANSACTION;\n")
	if len(parts) != 2 {
		t.Fatalf("parts %q", parts)
	}
	if got := normalizeSQL(parts[0]); !strings.HasPrefix(got, "CREATE TEMP TABLE new_rows AS SELECT * EXCEPT(_chunk, _n) FROM ( SELECT b.*, ROW_NUMBER() OVER (PARTITION BY b.event_id ORDER BY b.load_id, b._chunk) AS _n FROM batch_rows b WHERE b.event_id NOT IN (SELECT f.event_id FROM fact_ai_event f") {
		t.Fatalf("normalized %q", got)
	}
}
