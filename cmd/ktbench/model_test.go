package main

import (
	"math"
	"strings"
	"testing"
)

// The commit's fact anti-join, as the warehouse writes it (table
// references in full).
const factInsertSQL = "INSERT INTO `p.d.fact_ai_event` SELECT s.* FROM `p.d.stg_load_00000` s\n" +
	"WHERE s.event_id NOT IN (SELECT f.event_id FROM `p.d.fact_ai_event` f WHERE f.event_date BETWEEN @min_date AND @max_date)"

func TestModelScalesStatementsByLayout(t *testing.T) {
	in := defaultModelInputs()
	w := widths{"event": {}, "quarantine": {}}
	for _, c := range eventCols {
		w["event"][c] = 10
	}
	w["event"]["event_id"], w["event"]["event_date"] = 38, 8
	stmts := []observedStmt{{Scope: "chunk", Job: true, SQL: factInsertSQL}, {Scope: "chunk", Job: true, Load: "stg_load_00000"}}
	p := shape("pull", 1e8, in)
	if p.CommitsPerDay != 24*84 || p.RunsPerDay != 24*5 {
		t.Fatalf("pull at 100M/day: %v commits, %v runs; want 2016 and 120", p.CommitsPerDay, p.RunsPerDay)
	}
	c, err := cost(p, stmts, w, in)
	if err != nil {
		t.Fatal(err)
	}
	// Per commit: the staging table's rows, every column, and half a
	// day's partition of fact's event_id and event_date.
	rows := 1e8 / p.CommitsPerDay
	want := p.CommitsPerDay * (math.Max(rows*rowWidth(w["event"]), minTableBytes) + 0.5*1e8*(38+8))
	if math.Abs(c.BytesScanned-want) > 1 {
		t.Fatalf("bytes scanned %.0f, want %.0f", c.BytesScanned, want)
	}
	if c.DML["fact_ai_event"] != p.CommitsPerDay || c.LoadJobs != p.CommitsPerDay || c.QueryJobs != p.CommitsPerDay {
		t.Fatalf("counts %+v", c)
	}
	// Fewer commits per load, as a redesign would make, cost less.
	in.CommitsPerLoad = 1
	p1 := shape("export", 1e8, in)
	c1, err := cost(p1, stmts, w, in)
	if err != nil {
		t.Fatal(err)
	}
	if c1.DML["fact_ai_event"] != 1 || c1.BytesScanned >= c.BytesScanned {
		t.Fatalf("one commit a load: %v fact DML, %v bytes", c1.DML["fact_ai_event"], c1.BytesScanned)
	}
}

func TestModelRefusesAStatementWithoutRule(t *testing.T) {
	_, err := cost(shape("export", 1e6, defaultModelInputs()), []observedStmt{{Scope: "load", Job: true, SQL: "SELECT * FROM `p.d.fact_ai_event`"}}, widths{}, defaultModelInputs())
	if err == nil || !strings.Contains(err.Error(), "no rule") {
		t.Fatalf("err %v, want no rule", err)
	}
}

func TestSplitScriptAndNormalize(t *testing.T) {
	parts := splitScript("BEGIN TRANSACTION;\n" + factInsertSQL + ";\nCOMMIT TRANSACTION;\n")
	if len(parts) != 1 {
		t.Fatalf("parts %q", parts)
	}
	if got := normalizeSQL(parts[0]); !strings.HasPrefix(got, "INSERT INTO fact_ai_event SELECT s.* FROM stg s WHERE") {
		t.Fatalf("normalized %q", got)
	}
}
