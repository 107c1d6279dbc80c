package warehouse_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/warehouse"
)

// ddlCounter records the changes a Warehouse makes to views.
type ddlCounter struct {
	mu    sync.Mutex
	stmts []string
}

func (c *ddlCounter) hook(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stmts = append(c.stmts, what)
}

func (c *ddlCounter) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.stmts...)
}

// exec runs one statement on the test emulator, outside the Warehouse.
func exec(t *testing.T, sql string) {
	t.Helper()
	ctx := context.Background()
	job, err := bq.Query(sql).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := job.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Err() != nil {
		t.Fatal(st.Err())
	}
}

// A worker start that finds the views as they should be must change
// nothing: dropping and re-creating them left a window in which a killed
// worker left a view missing.
func TestSecondStartIssuesNoViewDDL(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t) // the first start created everything
	var ddl ddlCounter
	w.SetDDLHook(ddl.hook)
	rep, err := w.EnsureSchema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := ddl.list(); len(got) != 0 {
		t.Fatalf("a start with nothing changed issued %d schema statements: %q", len(got), got)
	}
	if len(rep.CreatedViews)+len(rep.ReplacedViews) != 0 || rep.String() != "schema up to date" {
		t.Fatalf("report %q (created %v, replaced %v)", rep, rep.CreatedViews, rep.ReplacedViews)
	}
}

// A view whose stored definition differs (an older release's) is
// replaced, and a missing one (e.g. dropped by hand) is created; the
// others are left alone.
func TestChangedOrMissingViewIsApplied(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_views_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	stale, missing := warehouse.Views[0].Name, warehouse.Views[2].Name
	ref := func(name string) string { return fmt.Sprintf("`%s.%s.%s`", project, ds, name) }
	exec(t, "DROP VIEW "+ref(stale))
	exec(t, "CREATE VIEW "+ref(stale)+" AS SELECT 1 AS stale_definition")
	exec(t, "DROP VIEW "+ref(missing))

	var ddl ddlCounter
	w.SetDDLHook(ddl.hook)
	rep, err := w.EnsureSchema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.ReplacedViews) != fmt.Sprint([]string{stale}) || fmt.Sprint(rep.CreatedViews) != fmt.Sprint([]string{missing}) {
		t.Fatalf("replaced %v, created %v; want [%s], [%s]", rep.ReplacedViews, rep.CreatedViews, stale, missing)
	}
	for _, s := range ddl.list() {
		for _, v := range warehouse.Views {
			if v.Name != stale && v.Name != missing && strings.HasSuffix(s, " "+v.Name) {
				t.Errorf("view %s was unchanged but touched: %s", v.Name, s)
			}
		}
	}
	for _, s := range ddl.list() {
		t.Logf("change: %s", s)
	}
	// The replaced view now has the current definition's columns.
	schemas, _, err := w.ReportRows(context.Background(), warehouse.Views[0], 1, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, f := range schemas[0] {
		cols = append(cols, f.Name)
	}
	if got := strings.Join(cols, ","); got != "event_date,team,requests,tokens,spend_usd" {
		t.Fatalf("replaced view has columns %s", got)
	}
	// And the next start is quiet again.
	ddl = ddlCounter{}
	w.SetDDLHook(ddl.hook)
	if _, err := w.EnsureSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ddl.list(); len(got) != 0 {
		t.Fatalf("after applying, the next start issued %q", got)
	}
}

// TestPolicyAndLagViewsFollowTheGuide: a policy triggered but not
// evaluated is in the policy report (the guide counts the triggered),
// and the lag is the newest audit's (API newest against the warehouse's),
// not the time since the newest event.
func TestPolicyAndLagViewsFollowTheGuide(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_views_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	load(t, w, "load-v", 10, event(uuid(90), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "block", "0.10", "jailbreak"))
	read := func(name string) [][]bigquery.Value { return readView(t, w, name, time.Time{}) }
	pol := map[string]string{}
	for _, r := range read("report_policy_effectiveness") {
		pol[fmt.Sprint(r[0])] = fmt.Sprint(r[1], " ", r[2], " ", r[3])
	}
	if pol["jailbreak"] != "0 1 1" || pol["pii"] != "1 0 0" {
		t.Errorf("policy effectiveness %v, want jailbreak triggered and blocked once though never evaluated", pol)
	}
	if rows := read("dq_ingestion_lag"); len(rows) != 1 || rows[0][2] != nil {
		t.Errorf("ingestion lag before any audit %v, want one row without a lag", rows)
	}
	exec(t, fmt.Sprintf("INSERT INTO `%s.%s.%s` (audited_at, api_newest, warehouse_newest, ingestion_lag_seconds) VALUES (CURRENT_TIMESTAMP(), TIMESTAMP '2026-11-01 10:00:30+00', TIMESTAMP '2026-11-01 10:00:00+00', 30)", project, ds, schemas.TableAudit))
	rows := read("dq_ingestion_lag")
	if len(rows) != 1 || fmt.Sprint(rows[0][2]) != "30" || fmt.Sprint(rows[0][0]) != "2026-11-01 10:00:00 +0000 UTC" {
		t.Errorf("ingestion lag %v, want the audit's 30 s beside the newest event", rows)
	}
}
