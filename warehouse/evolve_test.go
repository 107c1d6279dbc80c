package warehouse_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/warehouse"
)

// guideColumns are the columns this version adds for the data engineer
// guide; a dataset made by the version before has every table without them.
var guideColumns = []string{"date_id", "model_id", "user_id", "policies_count", "model_name", "cost_per_1k", "week", "gateway_name"}

// oldColumns are the columns a dataset made before the guide's columns
// lacks: those and the lookup keys, the ledger's dates and its count of
// rows added, and the audit's counted and live columns, added after them.
var oldColumns = append(slices.Clone(guideColumns), "event_key", "record_key", "min_date", "max_date", "added",
	"counted_at", "counted_since", "counted_commits", "counted_newest", "live_newest", "live_newest_ingested", "live_counted_at", "counted_hours")

// createOldDataset makes the tables as the version before the guide's
// columns created them (today's definitions without oldColumns) and
// fills them with rows it wrote: policy_count then counted triggered
// policies.
func createOldDataset(t *testing.T, ctx context.Context, ds string) {
	t.Helper()
	if err := bq.Dataset(ds).Create(ctx, &bigquery.DatasetMetadata{Location: "US"}); err != nil {
		t.Fatal(err)
	}
	for _, spec := range bqschema.Tables() {
		var old bigquery.Schema
		for _, f := range spec.Schema {
			if !slices.Contains(oldColumns, f.Name) {
				old = append(old, f)
			}
		}
		tm := &bigquery.TableMetadata{Schema: old}
		if spec.PartitionField != "" {
			tm.TimePartitioning = &bigquery.TimePartitioning{Field: spec.PartitionField}
		}
		if err := bq.Dataset(ds).Table(spec.Name).Create(ctx, tm); err != nil {
			t.Fatal(err)
		}
	}
	row := func(id, ts, user, provider, model string, evaluated, triggered []string) string {
		q := func(xs []string) string { return "['" + strings.Join(xs, "','") + "']" }
		return fmt.Sprintf(`('%s', TIMESTAMP '%s', DATE(TIMESTAMP '%s'), 10, '%s', '%s', '%s', '%s', 'block', %s, %s, %d,
  5, 10, 20, 30, NUMERIC '0.5', TRUE, NULL, NULL, 'old-load', 'export', CURRENT_TIMESTAMP())`,
			id, ts, ts, gw, user, provider, model, q(evaluated), q(triggered), len(triggered))
	}
	rows := row(uuid(1), "2026-11-29T10:00:00Z", "ada", "openai", "gpt-4o", []string{"pii", "toxicity", "cost-guard"}, []string{"pii"}) + ",\n" +
		row(uuid(2), "2026-02-03T23:59:59Z", "bo", "azure_openai", "gpt-4o", []string{"pii"}, []string{"pii"})
	for _, table := range []string{schemas.TableFact, schemas.TableRaw} {
		exec(t, fmt.Sprintf("INSERT INTO `%s.%s.%s` VALUES %s", project, ds, table, rows))
	}
	exec(t, fmt.Sprintf("INSERT INTO `%s.%s.quarantine` VALUES ('%s', '%s', TIMESTAMP '2026-11-29T09:00:00Z', 'cost', 'must not be negative', '{}', 'old-load', 'export', CURRENT_TIMESTAMP())",
		project, ds, idHash(uuid(5)), uuid(5)))
	exec(t, fmt.Sprintf("INSERT INTO `%s.%s.dim_user` VALUES ('ada', 'platform', 'eng')", project, ds))
	exec(t, fmt.Sprintf("INSERT INTO `%s.%s.dim_model` VALUES ('openai', 'gpt-4o', NUMERIC '0.0025', NUMERIC '0.01')", project, ds))
	exec(t, fmt.Sprintf("INSERT INTO `%s.%s.dim_date` VALUES (DATE '2026-11-29', 2026, 4, 11, 29, 0, 48, TRUE)", project, ds))
	exec(t, fmt.Sprintf("INSERT INTO `%s.%s.dim_gateway` VALUES ('%s', 'gw-prod-eu', 'security', 'production')", project, ds, gw))
}

// idHash is the record_hash the splitter gives a bad record with an id.
func idHash(id string) string {
	sum := sha256.Sum256([]byte("id:" + id))
	return hex.EncodeToString(sum[:])
}

func queryRows(t *testing.T, sql string) [][]bigquery.Value {
	t.Helper()
	it, err := bq.Query(sql).Read(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out [][]bigquery.Value
	for {
		var r []bigquery.Value
		if err := it.Next(&r); err != nil {
			break
		}
		out = append(out, r)
	}
	return out
}

// A dataset created by the version before gets the guide's columns at
// worker start, without a reload: added, then filled once in the old rows
// with the values the loader writes now (the same surrogate keys), and the
// loader keeps working on it. A second start changes nothing.
func TestGuideColumnsEvolveAnOldDataset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_evolve_%d", dsSeq.Add(1))
	createOldDataset(t, ctx, ds)
	w, err := warehouse.New(bq, project, ds, "US")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.EnsureSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.AddedColumns[schemas.TableFact]; fmt.Sprint(got) != "[date_id model_id user_id policies_count event_key]" {
		t.Errorf("added to fact: %v", got)
	}
	var filled []string
	for _, b := range rep.Backfills {
		filled = append(filled, b.Table)
		if b.SQL == "" {
			t.Errorf("backfill of %s reports no statement", b.Table)
		}
	}
	slices.Sort(filled)
	// fact_ai_event twice: the guide's columns, then event_key; audit for
	// its counted columns.
	if fmt.Sprint(filled) != "[audit dim_date dim_gateway dim_model dim_user fact_ai_event fact_ai_event load_ledger quarantine raw_events]" || !strings.Contains(rep.String(), "backfilled fact_ai_event") {
		t.Errorf("backfills %v, report %q", filled, rep)
	}

	for _, table := range []string{schemas.TableFact, schemas.TableRaw} {
		got := queryRows(t, fmt.Sprintf("SELECT event_id, date_id, model_id, user_id, policies_count, policy_count FROM `%s.%s.%s` ORDER BY event_id", project, ds, table))
		want := fmt.Sprint([][]bigquery.Value{
			{uuid(1), int64(20261129), schemas.ModelID("openai", "gpt-4o"), schemas.UserID("ada"), int64(3), int64(3)},
			{uuid(2), int64(20260203), schemas.ModelID("azure_openai", "gpt-4o"), schemas.UserID("bo"), int64(1), int64(1)},
		})
		if fmt.Sprint(got) != want {
			t.Errorf("%s after the backfill:\n got %v\nwant %v", table, got, want)
		}
	}
	dims := map[string]string{
		"SELECT user_id FROM `%s.%s.dim_user`":                     fmt.Sprint([][]bigquery.Value{{schemas.UserID("ada")}}),
		"SELECT model_id, model_name FROM `%s.%s.dim_model`":       fmt.Sprint([][]bigquery.Value{{schemas.ModelID("openai", "gpt-4o"), "gpt-4o"}}),
		"SELECT date_id, week FROM `%s.%s.dim_date`":               "[[20261129 48]]",
		"SELECT gateway_id, gateway_name FROM `%s.%s.dim_gateway`": fmt.Sprint([][]bigquery.Value{{gw, "gw-prod-eu"}}),
	}
	for sql, want := range dims {
		if got := fmt.Sprint(queryRows(t, fmt.Sprintf(sql, project, ds))); got != want {
			t.Errorf("%s: got %v, want %v", sql, got, want)
		}
	}

	keys := queryRows(t, fmt.Sprintf("SELECT TO_HEX(event_key) FROM `%s.%s.%s` ORDER BY event_id", project, ds, schemas.TableFact))
	if want := fmt.Sprintf("[[%s] [%s]]", strings.ReplaceAll(uuid(1), "-", ""), strings.ReplaceAll(uuid(2), "-", "")); fmt.Sprint(keys) != want {
		t.Errorf("fact event_key after the backfill: %v, want %s", keys, want)
	}

	if got := queryRows(t, fmt.Sprintf("SELECT TO_HEX(record_key) FROM `%s.%s.quarantine`", project, ds)); fmt.Sprint(got) != "[["+idHash(uuid(5))[:32]+"]]" {
		t.Errorf("quarantine record_key after the backfill: %v", got)
	}

	// The loader writes into the evolved tables, the same keys; an old
	// event and an old bad record resent are found by the keys the
	// backfill gave them.
	bad := strings.Replace(event(uuid(5), "2026-11-29T09:00:00Z", "ada", "gpt-4o", "allow", "0.1"), `"cost":"0.1"`, `"cost":"-1"`, 1)
	load(t, w, "load-new", 10, event(uuid(3), "2026-11-29T11:00:00Z", "ada", "gpt-4o", "allow", "0.1"),
		event(uuid(1), "2026-11-29T10:00:00Z", "ada", "gpt-4o", "block", "0.5", "pii"), bad)
	if ids := factIDs(t, w); len(ids) != 3 || ids[uuid(1)] != 1 {
		t.Errorf("fact after a resend of an old event: %v", ids)
	}
	if q, err := w.QuarantinedIDs(ctx); err != nil || len(q) != 1 || len(q[uuid(5)]) != 1 {
		t.Errorf("quarantine after a resend of an old bad record: %v (%v)", q, err)
	}
	got := queryRows(t, fmt.Sprintf("SELECT event_id, model_id, user_id, date_id FROM `%s.%s.fact_ai_event` WHERE model_id = '%s' ORDER BY event_id",
		project, ds, schemas.ModelID("openai", "gpt-4o")))
	if len(got) != 2 || got[1][0] != uuid(3) || got[1][2] != got[0][2] || got[1][3] != got[0][3] {
		t.Errorf("a new row does not share the old row's keys: %v", got)
	}

	rep, err = w.EnsureSchema(ctx)
	if err != nil || len(rep.Backfills) != 0 || len(rep.AddedColumns) != 0 {
		t.Errorf("second start: %v, report %q, backfills %v", err, rep, rep.Backfills)
	}
}

// On the emulator the backfill rebuilds a table through a copy. A worker
// killed in the middle resumes at its next start: after the drop (fact:
// only the copy holds the rows), or before it (raw: an incomplete copy
// beside the intact table, made again).
func TestInterruptedRebuildResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_resume_%d", dsSeq.Add(1))
	createOldDataset(t, ctx, ds)
	var old bigquery.Schema
	for _, f := range bqschema.EventRowSchema() {
		if !slices.Contains(guideColumns, f.Name) {
			old = append(old, f)
		}
	}
	for _, table := range []string{schemas.TableFact, schemas.TableRaw} {
		if err := bq.Dataset(ds).Table(table+"__ktpipe_evolve").Create(ctx, &bigquery.TableMetadata{Schema: old}); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, fmt.Sprintf("INSERT INTO `%[1]s.%[2]s.fact_ai_event__ktpipe_evolve` SELECT * FROM `%[1]s.%[2]s.fact_ai_event`", project, ds))
	if err := bq.Dataset(ds).Table(schemas.TableFact).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := warehouse.New(bq, project, ds, "US")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{schemas.TableFact, schemas.TableRaw} {
		got := queryRows(t, fmt.Sprintf("SELECT event_id, date_id, policies_count FROM `%s.%s.%s` ORDER BY event_id", project, ds, table))
		if fmt.Sprint(got) != fmt.Sprintf("[[%s 20261129 3] [%s 20260203 1]]", uuid(1), uuid(2)) {
			t.Errorf("%s after the resumed rebuild: %v", table, got)
		}
		if _, err := bq.Dataset(ds).Table(table + "__ktpipe_evolve").Metadata(ctx); err == nil {
			t.Errorf("the copy of %s is left behind", table)
		}
	}
	// The fact table, re-created at this start and refilled from the
	// copy, holds old rows: the later migration fills their keys too.
	keys := queryRows(t, fmt.Sprintf("SELECT TO_HEX(event_key) FROM `%s.%s.%s` ORDER BY event_id", project, ds, schemas.TableFact))
	if want := fmt.Sprintf("[[%s] [%s]]", strings.ReplaceAll(uuid(1), "-", ""), strings.ReplaceAll(uuid(2), "-", "")); fmt.Sprint(keys) != want {
		t.Errorf("fact event_key after the resumed rebuild: %v, want %s", keys, want)
	}
}
