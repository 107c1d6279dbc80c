package warehouse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
)

// Columns were added to tables that already held rows: the data engineer
// guide's, then the lookup keys and the ledger's dates (migrations).
// EnsureSchema adds them (NULLABLE, at the end), then fills them once in
// the rows written before, with the same values the loader writes now
// (schemas.Transform, the commit's key SQL), and records that in
// pipeline_state so later starts only read one checkpoint each.

// backfillColumn is one column a backfill sets, and the SQL that computes it from
// the row's other columns; an empty expr leaves it NULL in the old rows.
type backfillColumn struct {
	name string
	expr string
	new  bool // added by the migration (false: an existing column whose meaning changed)
}

// dateIDSQL is schemas.DateID in SQL.
func dateIDSQL(col string) string {
	return fmt.Sprintf("EXTRACT(YEAR FROM %[1]s) * 10000 + EXTRACT(MONTH FROM %[1]s) * 100 + EXTRACT(DAY FROM %[1]s)", col)
}

// KeySQL holds schemas.ModelID and schemas.UserID in SQL;
// TestGuideColumnsEvolveAnOldDataset compares them with the Go functions.
var KeySQL = struct{ ModelID, UserID string }{
	ModelID: "SUBSTR(TO_HEX(SHA256(CONCAT(CAST(BYTE_LENGTH(provider) AS STRING), ':', provider, model))), 1, 16)",
	UserID:  "SUBSTR(TO_HEX(SHA256(`user`)), 1, 16)",
}

// guideBackfills are the columns of each table to fill in rows written
// before the guide's columns existed, in the order of the table's schema.
func guideBackfills() map[string][]backfillColumn {
	event := []backfillColumn{
		{"date_id", dateIDSQL("event_date"), true},
		{"model_id", KeySQL.ModelID, true},
		{"user_id", KeySQL.UserID, true},
		{"policies_count", "ARRAY_LENGTH(policies_evaluated)", true},
		// policy_count counted triggered policies before; the guide counts
		// evaluated ones.
		{"policy_count", "ARRAY_LENGTH(policies_evaluated)", false},
	}
	return map[string][]backfillColumn{
		schemas.TableRaw:     event,
		schemas.TableFact:    event,
		schemas.TableDimUser: {{"user_id", KeySQL.UserID, true}},
		// cost_per_1k comes from fact_usage at the next refresh.
		schemas.TableDimModel: {{"model_id", KeySQL.ModelID, true}, {"model_name", "model", true},
			{"cost_per_1k", "", true}},
		schemas.TableDimDate:    {{"date_id", dateIDSQL("date"), true}, {"week", "iso_week", true}},
		schemas.TableDimGateway: {{"gateway_name", "name", true}},
	}
}

// A migration is columns added to tables that held rows, filled once in
// those rows; key marks in pipeline_state that it ran. They run in
// order: a rebuild by an earlier one creates the table with every column
// of today's schema, leaving a later one's NULL for it to fill.
type migration struct {
	key   string
	fills map[string][]backfillColumn
}

func migrations() []migration {
	return []migration{
		{"schema_backfill_guide_columns", guideBackfills()},
		// The ledger's dates stay NULL in old rows (a check then reads
		// raw for them, and no expression is given): listed so that the
		// emulator rebuilds the table, which it must for its engine to
		// see them; where the engine sees them (BigQuery) no statement
		// runs.
		{"schema_backfill_lookup_columns", map[string][]backfillColumn{
			schemas.TableFact:       {{"event_key", eventKeySQL("event_id"), true}},
			schemas.TableQuarantine: {{"record_key", recordKeySQL("record_hash"), true}},
			schemas.TableLedger:     {{"min_date", "", true}, {"max_date", "", true}},
		}},
		// Likewise NULL in old rows: an audit interval with such rows
		// counts resends from raw, as before.
		{"schema_ledger_added", map[string][]backfillColumn{
			schemas.TableLedger: {{"added", "", true}},
		}},
		// NULL in old rows: the next audit counts rather than carry.
		{"schema_audit_counted", map[string][]backfillColumn{
			schemas.TableAudit: {{"counted_at", "", true}, {"counted_since", "", true}, {"counted_commits", "", true}, {"counted_newest", "", true}},
		}},
		// NULL in old rows: the next audit reads the live view's window
		// whole.
		{"schema_audit_live", map[string][]backfillColumn{
			schemas.TableAudit: {{"live_newest", "", true}, {"live_newest_ingested", "", true}, {"live_counted_at", "", true}},
		}},
		// NULL in old rows: the next audit counts the hours.
		{"schema_audit_hours", map[string][]backfillColumn{
			schemas.TableAudit: {{"counted_hours", "", true}},
		}},
	}
}

// Backfill is one backfill EnsureSchema ran, for the worker's log.
type Backfill struct {
	Table string
	How   string // "update", or "rebuild" where the backend cannot see added columns
	SQL   string
}

// backfillColumns fills a migration's columns in rows written before
// they existed, once per dataset. Each statement only touches rows whose
// first new column is NULL, so running it again (a worker killed before
// the checkpoint was written) changes nothing twice.
//
// Rows an older worker writes after this ran (a rolling upgrade) keep
// NULLs; the README says to stop old workers first.
func (w *Warehouse) backfillColumns(ctx context.Context, rep *SchemaReport, created map[string]bool, m migration) error {
	fills := m.fills
	fresh := true
	for table := range fills {
		fresh = fresh && created[table]
	}
	if fresh {
		// A new dataset: nothing to fill; one write, no reads.
		return w.SetCheckpoint(ctx, m.key, "done")
	}
	done, err := w.Checkpoint(ctx, m.key)
	if err != nil {
		return fmt.Errorf("schema backfill: %w", err)
	}
	if done != "" {
		return nil
	}
	for _, spec := range bqschema.Tables() {
		cols, ok := fills[spec.Name]
		if !ok {
			continue
		}
		_, err := w.ds.Table(backupName(spec.Name)).Metadata(ctx)
		haveBackup := err == nil
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("read %s: %w", backupName(spec.Name), err)
		}
		if created[spec.Name] && !haveBackup {
			continue // a table created now has no old rows
		}
		b, err := w.backfillTable(ctx, spec, cols, haveBackup)
		if err != nil {
			return fmt.Errorf("schema backfill of %s: %w", spec.Name, err)
		}
		if b.SQL != "" {
			rep.Backfills = append(rep.Backfills, b)
		}
		// A table created at this start but refilled from a copy (a
		// rebuild a kill interrupted after its drop) holds old rows:
		// later migrations must fill their columns in them, and
		// seedUsage, which reads the same map, must seed from them.
		delete(created, spec.Name)
	}
	return w.SetCheckpoint(ctx, m.key, "done")
}

// backfillTable fills one table in place where the engine sees the added
// columns (BigQuery), and rebuilds it where it does not (the emulator),
// or where an earlier rebuild left its copy behind.
func (w *Warehouse) backfillTable(ctx context.Context, spec bqschema.TableSpec, cols []backfillColumn, haveBackup bool) (Backfill, error) {
	var set []string
	var unset string // the first column set: NULL in the rows not filled yet
	for _, c := range cols {
		if c.expr == "" {
			continue
		}
		set = append(set, fmt.Sprintf("`%s` = %s", c.name, c.expr))
		if unset == "" {
			unset = c.name
		}
	}
	seen, err := w.seesColumns(ctx, spec.Name, cols)
	if err != nil {
		return Backfill{}, err
	}
	if seen && !haveBackup {
		if len(set) == 0 {
			return Backfill{}, nil // no statement: the engine sees the columns, and NULL is their value
		}
		update := fmt.Sprintf("UPDATE %s SET %s WHERE `%s` IS NULL", w.ref(spec.Name), strings.Join(set, ", "), unset)
		return Backfill{Table: spec.Name, How: "update", SQL: update}, w.exec(ctx, "backfill "+spec.Name, update)
	}
	sql, err := w.rebuild(ctx, spec, cols, seen, haveBackup)
	return Backfill{Table: spec.Name, How: "rebuild", SQL: sql}, err
}

// seesColumns says whether the query engine knows the new columns. On
// BigQuery it does as soon as they are added; the emulator records them
// in the table's metadata but its engine keeps the table's first schema
// (and ignores ALTER TABLE ADD COLUMN), answering 400 to any query that
// names one. A missing table (a rebuild interrupted after the drop) sees
// nothing.
func (w *Warehouse) seesColumns(ctx context.Context, table string, cols []backfillColumn) (bool, error) {
	if _, err := w.ds.Table(table).Metadata(ctx); isNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("read table %s: %w", table, err)
	}
	var names []string
	for _, c := range cols {
		if c.new {
			names = append(names, "`"+c.name+"`")
		}
	}
	_, err := w.query(ctx, "probe "+table, fmt.Sprintf("SELECT %s FROM %s LIMIT 0", strings.Join(names, ", "), w.ref(table)))
	var ge *googleapi.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ge) && ge.Code == http.StatusBadRequest && strings.Contains(ge.Message, "Unrecognized name"):
		// Only the analyzer's "this column does not exist" sends a table
		// to rebuild (which drops and re-creates it): BigQuery sees added
		// columns, so there any other 400 is an error to report, never a
		// reason to drop a table.
		return false, nil
	}
	return false, err
}

func backupName(table string) string { return table + "__ktpipe_evolve" }

// rebuild gives a table whose added columns the engine cannot see (the
// emulator) a new table with them, and the old rows with their values
// computed: copy the rows aside, drop the table, create it with the
// whole schema, insert the copy with the new columns' values, drop the
// copy. It resumes after a kill at any step: while the old table still
// exists unchanged the copy is made again from it; once it is gone the
// copy is complete, and the table is refilled from the copy.
//
// Only for a backend whose engine does not see added columns: on
// BigQuery the in-place UPDATE runs instead. Like that backend, it
// assumes one worker: a commit by another worker between the copy and
// the drop would be lost.
func (w *Warehouse) rebuild(ctx context.Context, spec bqschema.TableSpec, cols []backfillColumn, tableSees, haveBackup bool) (string, error) {
	t, bak := w.ds.Table(spec.Name), w.ds.Table(backupName(spec.Name))
	isNew := map[string]bool{}
	expr := map[string]string{}
	for _, c := range cols {
		isNew[c.name] = c.new
		expr[c.name] = c.expr
	}
	md, err := t.Metadata(ctx)
	tableExists := !isNotFound(err)
	if err != nil && tableExists {
		return "", fmt.Errorf("read table %s: %w", spec.Name, err)
	}
	if tableExists && !tableSees {
		// The old table is intact: (re)make the copy of its old columns.
		if haveBackup {
			if err := bak.Delete(ctx); err != nil && !isNotFound(err) {
				return "", fmt.Errorf("drop stale copy %s: %w", backupName(spec.Name), err)
			}
		}
		// The copy takes the columns the engine serves: the metadata also
		// lists those added for a later migration, which it does not.
		served, err := w.servedColumns(ctx, spec.Name)
		if err != nil {
			return "", err
		}
		var old bigquery.Schema
		var names []string
		for _, f := range md.Schema {
			if served[f.Name] && !isNew[f.Name] {
				old = append(old, f)
				names = append(names, "`"+f.Name+"`")
			}
		}
		if err := bak.Create(ctx, &bigquery.TableMetadata{Schema: old, Description: "ktpipe: copy of " + spec.Name + " while its schema evolves"}); err != nil {
			return "", fmt.Errorf("create copy of %s: %w", spec.Name, err)
		}
		cols := strings.Join(names, ", ")
		if err := w.exec(ctx, "copy "+spec.Name, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s", w.ref(backupName(spec.Name)), cols, cols, w.ref(spec.Name))); err != nil {
			return "", err
		}
		n, err := w.countRows(ctx, spec.Name)
		if err != nil {
			return "", err
		}
		if m, err := w.countRows(ctx, backupName(spec.Name)); err != nil || m != n {
			return "", fmt.Errorf("copy of %s holds %d rows, the table %d (%v)", spec.Name, m, n, err)
		}
		if err := t.Delete(ctx); err != nil {
			return "", fmt.Errorf("drop %s to rebuild it: %w", spec.Name, err)
		}
		tableExists = false
	}
	bmd, err := bak.Metadata(ctx)
	if err != nil {
		return "", fmt.Errorf("read copy of %s: %w", spec.Name, err)
	}
	// The new schema: the copy's columns (ours and any foreign ones, in
	// their order), then ours that it lacks.
	schema := append(bigquery.Schema{}, bmd.Schema...)
	have := map[string]bool{}
	for _, f := range schema {
		have[f.Name] = true
	}
	for _, f := range spec.Schema {
		if !have[f.Name] {
			schema = append(schema, f)
		}
	}
	if !tableExists {
		tm := &bigquery.TableMetadata{Schema: schema, Description: spec.Description}
		tm.TimePartitioning = spec.TimePartitioning()
		if len(spec.Clustering) > 0 {
			tm.Clustering = &bigquery.Clustering{Fields: spec.Clustering}
		}
		if err := t.Create(ctx, tm); err != nil && !isConflict(err) {
			return "", fmt.Errorf("create %s with its new columns: %w", spec.Name, err)
		}
	}
	var names, values []string
	for _, f := range schema {
		names = append(names, "`"+f.Name+"`")
		if e := expr[f.Name]; e != "" {
			values = append(values, e)
		} else if have[f.Name] {
			values = append(values, "`"+f.Name+"`")
		} else {
			values = append(values, "NULL") // left NULL here, or a later migration fills it
		}
	}
	// The table may hold part of an insert a kill interrupted: start over.
	if err := w.exec(ctx, "empty "+spec.Name, fmt.Sprintf("DELETE FROM %s WHERE TRUE", w.ref(spec.Name))); err != nil {
		return "", err
	}
	fill := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s", w.ref(spec.Name), strings.Join(names, ", "), strings.Join(values, ", "), w.ref(backupName(spec.Name)))
	if err := w.exec(ctx, "refill "+spec.Name, fill); err != nil {
		return fill, err
	}
	if err := bak.Delete(ctx); err != nil && !isNotFound(err) {
		return fill, fmt.Errorf("drop copy of %s: %w", spec.Name, err)
	}
	return fill, nil
}
