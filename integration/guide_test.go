package integration

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"google.golang.org/api/iterator"

	"github.com/ktpipe/ktpipe/workflows"
)

// seedQueriesFile is the data engineer guide's three queries as printed
// (../shared/guide/seed-queries.sql), kept beside the test so CI has it;
// TestSeedQueriesAreTheGuides checks the copy against the original.
const seedQueriesFile = "testdata/guide/seed-queries.sql"

// seedQueries splits the file on its "-- next" lines.
func seedQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(seedQueriesFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, q := range strings.Split(string(b), "\n-- next\n") {
		if strings.TrimSpace(q) != "" {
			out = append(out, q)
		}
	}
	if len(out) != 3 {
		t.Fatalf("%s holds %d queries, want the guide's 3", seedQueriesFile, len(out))
	}
	return out
}

// The copy must be the guide's text: found in a shared/guide directory
// beside the repository or an ancestor (../shared from the main checkout).
func TestSeedQueriesAreTheGuides(t *testing.T) {
	dir, _ := filepath.Abs("..")
	for ; ; dir = filepath.Dir(dir) {
		orig, err := os.ReadFile(filepath.Join(dir, "..", "shared", "guide", "seed-queries.sql"))
		if err == nil {
			mine, err := os.ReadFile(seedQueriesFile)
			if err != nil || string(mine) != string(orig) {
				t.Fatalf("%s differs from %s/../shared/guide/seed-queries.sql (%v): copy it again", seedQueriesFile, dir, err)
			}
			return
		}
		if filepath.Dir(dir) == dir {
			t.Skip("no ../shared/guide/seed-queries.sql beside this checkout (CI): the copy is what runs")
		}
	}
}

// TestGuideSeedQueriesAnswerTheGroundTruth runs each of the guide's
// queries unchanged, with the dataset as the default dataset, on a
// dataset loaded by ktpipe, and checks every answer against the
// simulator's own events (not against ktpipe's views). Reconcile then
// counts the same range with one group_by call (recorded for the replayer).
func TestGuideSeedQueriesAnswerTheGroundTruth(t *testing.T) {
	s := newStack(t, simConfig(), true)
	ctx := context.Background()
	since, until := s.historyWindow()
	var loaded workflows.ExportLoadResult
	if err := s.run("export-"+s.tq, workflows.ExportLoad, workflows.ExportLoadInput{Since: since, Until: until, Format: "ndjson", Tuning: s.tuning}, &loaded); err != nil {
		t.Fatal(err)
	}
	events := s.sim.ValidEvents(since, until)
	team := map[string]string{}
	for _, g := range s.sim.Gateways() {
		team[g.ID] = g.Team
	}

	queries := seedQueries(t)
	// Daily AI spend by team (the gateway's team), newest day first.
	spend := map[string]int64{}
	for _, e := range events {
		spend[fmt.Sprint(civil.DateOf(e.Timestamp), "/", team[e.GatewayID])] += e.CostNanos
	}
	rows := s.guideQuery(ctx, queries[0])
	got := map[string]int64{}
	for i, r := range rows {
		got[fmt.Sprint(r[0], "/", r[1])] = nanos(t, r[2])
		if i > 0 && r[0].(civil.Date).After(rows[i-1][0].(civil.Date)) {
			t.Errorf("daily spend: %v after %v, want newest first", r[0], rows[i-1][0])
		}
	}
	sameMap(t, "daily spend by team", got, spend)

	// Block rate by policy, most triggered first.
	type pol struct{ triggers, blocks int64 }
	policies := map[string]pol{}
	for _, e := range events {
		for _, p := range e.PoliciesTriggered {
			c := policies[p]
			c.triggers++
			if e.Decision == "block" {
				c.blocks++
			}
			policies[p] = c
		}
	}
	rows = s.guideQuery(ctx, queries[1])
	gotPol := map[string]pol{}
	for i, r := range rows {
		gotPol[r[0].(string)] = pol{r[1].(int64), r[2].(int64)}
		if i > 0 && r[1].(int64) > rows[i-1][1].(int64) {
			t.Errorf("policies: %v triggers after %v, want most first", r[1], rows[i-1][1])
		}
	}
	sameMap(t, "policy effectiveness", gotPol, policies)

	// Model usage, by total cost.
	type use struct{ requests, cost int64 }
	models := map[string]use{}
	for _, e := range events {
		k := e.Provider + "/" + e.Model
		m := models[k]
		m.requests++
		m.cost += e.CostNanos
		models[k] = m
	}
	rows = s.guideQuery(ctx, queries[2])
	gotModels := map[string]use{}
	for i, r := range rows {
		gotModels[fmt.Sprint(r[0], "/", r[1])] = use{r[2].(int64), nanos(t, r[3])}
		if i > 0 && nanos(t, r[3]) > nanos(t, rows[i-1][3]) {
			t.Errorf("models: cost %v after %v, want highest first", r[3], rows[i-1][3])
		}
	}
	sameMap(t, "model usage", gotModels, models)

	// Reconcile: one group_by call for the range; every window matches.
	before := s.sim.Stats().Requests
	var rec workflows.ReconcileResult
	if err := s.run("reconcile-"+s.tq, workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: until, Step: 24 * time.Hour, Tuning: s.tuning}, &rec); err != nil {
		t.Fatal(err)
	}
	if calls := s.sim.Stats().Requests - before; !rec.GroupBy || len(rec.Windows) != 5 || len(rec.Gaps) != 0 || calls != 1 {
		t.Fatalf("reconcile: group_by %v, %d windows, gaps %+v, %d API calls (want 1)", rec.GroupBy, len(rec.Windows), rec.Gaps, calls)
	}
	var total int64
	for _, w := range rec.Windows {
		total += w.Source
	}
	if total != int64(len(events)) {
		t.Errorf("reconcile counted %d events at the source, the simulator holds %d valid", total, len(events))
	}
	recordHistory(t, s.lastRun.GetID(), s.lastRun.GetRunID(), "reconcile_group_by")
}

// guideQuery runs one of the guide's queries as printed, with the dataset
// as its default dataset.
func (s *stack) guideQuery(ctx context.Context, sql string) [][]bigquery.Value {
	s.t.Helper()
	q := s.bq.Query(sql)
	q.DefaultProjectID, q.DefaultDatasetID = project, s.dataset
	it, err := q.Read(ctx)
	if err != nil {
		s.t.Fatalf("the guide's query fails: %v\n%s", err, sql)
	}
	var out [][]bigquery.Value
	for {
		var r []bigquery.Value
		err := it.Next(&r)
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			s.t.Fatalf("the guide's query fails: %v\n%s", err, sql)
		}
		out = append(out, r)
	}
}

// nanos reads a NUMERIC sum of USD as billionths, exactly.
func nanos(t *testing.T, v bigquery.Value) int64 {
	t.Helper()
	r, ok := v.(*big.Rat)
	if !ok {
		t.Fatalf("%v (%T) is not NUMERIC", v, v)
	}
	n := new(big.Rat).Mul(r, big.NewRat(1_000_000_000, 1))
	if !n.IsInt() {
		t.Fatalf("%v has more than 9 decimals", r.FloatString(12))
	}
	return n.Num().Int64()
}

func sameMap[V comparable](t *testing.T, what string, got, want map[string]V) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	bad := 0
	for _, k := range keys {
		if g, w := got[k], want[k]; g != w {
			bad++
			t.Errorf("%s %s: got %v, want %v", what, k, g, w)
		}
	}
	if bad == 0 {
		t.Logf("%s: %d groups match the ground truth", what, len(want))
	}
}
