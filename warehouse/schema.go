package warehouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/schemas"

	"github.com/ktpipe/ktpipe/schemas/bqschema"
)

// SchemaReport says what EnsureSchema changed.
type SchemaReport struct {
	CreatedDataset bool
	CreatedTables  []string
	AddedColumns   map[string][]string // table → columns added
	ForeignColumns map[string][]string // table → columns we do not define (left alone)
	CreatedViews   []string
	ReplacedViews  []string // their definition had changed
	// Backfills are the one-off statements that filled columns added to
	// tables holding rows (the guide's columns); the worker logs each.
	Backfills []Backfill
}

func (r SchemaReport) String() string {
	var parts []string
	if r.CreatedDataset {
		parts = append(parts, "created dataset")
	}
	if len(r.CreatedTables) > 0 {
		parts = append(parts, "created tables "+strings.Join(r.CreatedTables, ", "))
	}
	for t, cols := range r.AddedColumns {
		parts = append(parts, fmt.Sprintf("added to %s: %s", t, strings.Join(cols, ", ")))
	}
	for _, b := range r.Backfills {
		parts = append(parts, fmt.Sprintf("backfilled %s (%s)", b.Table, b.How))
	}
	if len(r.CreatedViews) > 0 {
		parts = append(parts, "created views "+strings.Join(r.CreatedViews, ", "))
	}
	if len(r.ReplacedViews) > 0 {
		parts = append(parts, "replaced views "+strings.Join(r.ReplacedViews, ", "))
	}
	if len(parts) == 0 {
		return "schema up to date"
	}
	return strings.Join(parts, "; ")
}

// SchemaError is a difference between a table and ktpipe's schema that
// cannot be applied automatically (a type change, a new REQUIRED column):
// the load stops so nobody gets an unplanned schema incident.
type SchemaError struct {
	Table, Column, Problem string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("table %s column %s: %s; migrate it by hand (see README, schema evolution)", e.Table, e.Column, e.Problem)
}

// EnsureSchema creates the dataset, tables and views that are missing,
// applies additive changes (new NULLABLE or REPEATED columns) to existing
// tables, fills columns added to tables holding rows once (see
// backfillColumns) and replaces views whose definition changed.
// Running it twice changes nothing the second time, and issues no DDL.
//
// Its statements outlive ctx's deadline on BigQuery: a migration that
// fills a column of a large table is one statement with no progress
// kept, so one cut off at the caller's deadline would never finish;
// left running, it completes, and the next start finds it done.
func (w *Warehouse) EnsureSchema(ctx context.Context) (SchemaReport, error) {
	ctx = context.WithValue(ctx, noJobTimeout{}, true)
	rep := SchemaReport{AddedColumns: map[string][]string{}, ForeignColumns: map[string][]string{}}
	if _, err := w.ds.Metadata(ctx); isNotFound(err) {
		if err := w.ds.Create(ctx, &bigquery.DatasetMetadata{Location: w.location}); err != nil && !isConflict(err) {
			return rep, fmt.Errorf("create dataset %s: %w", w.dataset, err)
		}
		rep.CreatedDataset = true
	} else if err != nil {
		return rep, fmt.Errorf("read dataset %s: %w", w.dataset, err)
	}
	for _, spec := range bqschema.Tables() {
		if err := w.ensureTable(ctx, spec, &rep); err != nil {
			return rep, err
		}
	}
	created := map[string]bool{}
	for _, t := range rep.CreatedTables {
		created[t] = true
	}
	for _, m := range migrations() {
		if err := w.backfillColumns(ctx, &rep, created, m); err != nil {
			return rep, err
		}
	}
	if err := w.seedUsage(ctx, created); err != nil {
		return rep, err
	}
	if err := w.guardUpgrade(ctx); err != nil {
		return rep, err
	}
	var err error
	rep.CreatedViews, rep.ReplacedViews, err = w.ensureViews(ctx)
	return rep, err
}

// guardUpgrade makes every commit look for doubled rows for
// commitLogWindow when commit_log is empty in a dataset whose fact table
// holds events: they were loaded by a version without commit_log (or
// nothing committed for 8 days). A commit of such a version that died
// before its look left no commit_log row to make the others look, and
// that version removed what it doubled at the next commit carrying its
// ids. An "upgrade" commit row that never converges stands for it (see
// mustLook). Both counts are metadata to BigQuery: no bytes read.
func (w *Warehouse) guardUpgrade(ctx context.Context) error {
	commits := w.ref(schemas.TableCommits)
	what := "count fact_ai_event and commit_log"
	rows, err := w.query(ctx, what, fmt.Sprintf("SELECT (SELECT COUNT(*) FROM %s) AS events, (SELECT COUNT(*) FROM %s) AS commits",
		w.ref(schemas.TableFact), commits))
	if err != nil {
		return err
	}
	if len(rows) != 1 {
		return fmt.Errorf("%s: %d result rows", what, len(rows))
	}
	var n [2]int64
	for i, col := range []string{"events", "commits"} {
		if n[i], err = strictInt(rows[0][col]); err != nil {
			return fmt.Errorf("%s: %s: %w", what, col, err)
		}
	}
	if events, commitRows := n[0], n[1]; events == 0 || commitRows > 0 {
		return nil
	}
	return w.exec(ctx, "mark the upgrade in commit_log", fmt.Sprintf("INSERT INTO %s (commit_set, what, ledger_rows, chunks_added, logged_at) SELECT @commit_set, 'commit', 0, 0, CURRENT_TIMESTAMP()", commits),
		bigquery.QueryParameter{Name: "commit_set", Value: "upgrade"})
}

// usageSeededKey marks in pipeline_state that fact_usage and fact_users
// hold what the fact table held when they were created.
const usageSeededKey = "usage_seeded"

// seedUsage fills fact_usage and fact_users from the fact table once, in
// a dataset whose fact table is older than they are; commits keep them up
// to date from then on. One transaction: a retry after a failure starts
// from empty tables again, and commits that run meanwhile only append,
// so each row is counted either by the seed's snapshot or by its commit.
func (w *Warehouse) seedUsage(ctx context.Context, created map[string]bool) error {
	if created[schemas.TableFact] {
		return w.SetCheckpoint(ctx, usageSeededKey, "done") // nothing to seed
	}
	done, err := w.Checkpoint(ctx, usageSeededKey)
	if err != nil || done != "" {
		return err
	}
	usage, users, fact := w.ref(schemas.TableUsage), w.ref(schemas.TableUsers), w.ref(schemas.TableFact)
	script := fmt.Sprintf(`BEGIN TRANSACTION;
DELETE FROM %[1]s WHERE @seed = @seed;
DELETE FROM %[2]s WHERE @seed = @seed;
INSERT INTO %[1]s (event_date, provider, model, events, cost, tokens, load_id, chunk)
SELECT f.event_date, f.provider, f.model, COUNT(*), SUM(f.cost_usd), SUM(f.total_tokens), @seed, 0
FROM %[3]s f GROUP BY f.event_date, f.provider, f.model;
INSERT INTO %[2]s (`+"`user`"+`) SELECT DISTINCT f.`+"`user`"+` FROM %[3]s f WHERE @seed = @seed;
COMMIT TRANSACTION;
`, usage, users, fact)
	// Each statement names @seed because the emulator refuses a script
	// statement without a parameter; a retry empties the tables first.
	if err := w.exec(ctx, "seed fact_usage and fact_users", script, bigquery.QueryParameter{Name: "seed", Value: "seed"}); err != nil {
		return err
	}
	return w.SetCheckpoint(ctx, usageSeededKey, "done")
}

func (w *Warehouse) ensureTable(ctx context.Context, spec bqschema.TableSpec, rep *SchemaReport) error {
	t := w.ds.Table(spec.Name)
	md, err := t.Metadata(ctx)
	if isNotFound(err) {
		tm := &bigquery.TableMetadata{Schema: spec.Schema, Description: spec.Description}
		tm.TimePartitioning = spec.TimePartitioning()
		if len(spec.Clustering) > 0 {
			tm.Clustering = &bigquery.Clustering{Fields: spec.Clustering}
		}
		if err := t.Create(ctx, tm); err != nil && !isConflict(err) {
			return fmt.Errorf("create table %s: %w", spec.Name, err)
		}
		rep.CreatedTables = append(rep.CreatedTables, spec.Name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read table %s: %w", spec.Name, err)
	}
	have := map[string]*bigquery.FieldSchema{}
	for _, f := range md.Schema {
		have[f.Name] = f
	}
	want := map[string]bool{}
	var add []*bigquery.FieldSchema
	for _, f := range spec.Schema {
		want[f.Name] = true
		h, ok := have[f.Name]
		switch {
		case !ok && f.Required:
			return &SchemaError{Table: spec.Name, Column: f.Name, Problem: "is new and REQUIRED, which BigQuery cannot add to existing rows"}
		case !ok:
			add = append(add, f)
		case canonicalType(h.Type) != canonicalType(f.Type):
			return &SchemaError{Table: spec.Name, Column: f.Name, Problem: fmt.Sprintf("is %s, ktpipe needs %s", h.Type, f.Type)}
		case h.Repeated != f.Repeated:
			return &SchemaError{Table: spec.Name, Column: f.Name, Problem: "differs in mode (REPEATED)"}
		}
	}
	for _, f := range md.Schema {
		if !want[f.Name] {
			rep.ForeignColumns[spec.Name] = append(rep.ForeignColumns[spec.Name], f.Name)
		}
	}
	if len(add) == 0 {
		return nil
	}
	newSchema := append(append(bigquery.Schema{}, md.Schema...), add...)
	if _, err := t.Update(ctx, bigquery.TableMetadataToUpdate{Schema: newSchema}, md.ETag); err != nil {
		return fmt.Errorf("add columns to %s: %w", spec.Name, err)
	}
	for _, f := range add {
		rep.AddedColumns[spec.Name] = append(rep.AddedColumns[spec.Name], f.Name)
	}
	return nil
}

// stagingExpiry bounds how long a staging table can outlive a failed load.
const stagingExpiry = 7 * 24 * time.Hour

// canonicalType names a column type one way: BigQuery answers FLOAT for a
// column created as FLOAT64 (ktpipe creates FLOAT64, see bqschema).
func canonicalType(t bigquery.FieldType) bigquery.FieldType {
	if t == "FLOAT64" {
		return bigquery.FloatFieldType
	}
	return t
}
