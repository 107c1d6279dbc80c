package warehouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/staging"
)

// ChunkFiles are a chunk's staged files, opened by the caller.
type ChunkFiles struct {
	Rows       *os.File
	Quarantine *os.File // nil when the chunk quarantined nothing
}

// StageChunk loads one chunk into its own staging tables with
// WRITE_TRUNCATE and a job id derived from the load id, chunk number and
// the file's content hash. A retry therefore replaces, never adds: the
// staging table holds exactly the chunk however often this runs. One load
// job per staging table also keeps far from BigQuery's 1,500 load jobs per
// table per day.
func (w *Warehouse) StageChunk(ctx context.Context, loadID string, c staging.Chunk, files ChunkFiles) error {
	if err := w.stageFile(ctx, tableName("stg_", loadID, c.Index), bqschema.EventRowSchema(), files.Rows, loadID, c.Index, "rows", c.Rows); err != nil {
		return err
	}
	if files.Quarantine != nil {
		return w.stageFile(ctx, tableName("qstg_", loadID, c.Index), bqschema.QuarantineSchema(), files.Quarantine, loadID, c.Index, "quarantine", c.Quarantined)
	}
	return nil
}

func (w *Warehouse) stageFile(ctx context.Context, table string, schema bigquery.Schema, f *os.File, loadID string, chunk int, kind string, wantRows int64) error {
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("stage %s: %w", table, err)
	}
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("stage %s: hash: %w", table, err)
	}
	jobID := fmt.Sprintf("%s_%s", tableName("ktpipe_"+kind+"_", loadID, chunk), hex.EncodeToString(h.Sum(nil))[:16])
	if err := w.loadNDJSON(ctx, table, schema, f, jobID, wantRows); err != nil {
		return err
	}
	// A staging table that a failed load leaves behind expires by itself.
	exp := time.Now().Add(stagingExpiry)
	if _, err := w.ds.Table(table).Update(ctx, bigquery.TableMetadataToUpdate{ExpirationTime: exp}, ""); err != nil {
		return fmt.Errorf("stage %s: set expiry: %w", table, err)
	}
	return nil
}

// CommitChunk moves a staged chunk into the raw, fact and quarantine
// tables and records it in the ledger. Every statement is guarded so that
// running it again adds nothing:
//   - raw gets the chunk's rows not already landed for this load;
//   - fact gets rows whose event id it does not hold yet, looking only at
//     the chunk's event_date partitions (an id's date never changes, since
//     it comes from the event's own timestamp);
//   - quarantine gets records whose hash it does not hold yet;
//   - the ledger gets one row per (load, chunk).
//
// This is an anti-join INSERT rather than MERGE: it is correct on
// BigQuery, and MERGE on the emulator refuses subquery sources and grows
// with target × source. On BigQuery the script runs as one transaction,
// so readers see the chunk all at once. Every statement names a parameter:
// the emulator refuses a script statement that uses none.
//
// Two guards cover commits that run at the same time:
//   - the same chunk: the script runs under a job id derived from the
//     load and chunk (runOnce), so a retry after a worker died waits for
//     the job the dead worker started instead of running a second one;
//   - overlapping loads (a pull and a backfill of the same hours, on two
//     workers): BigQuery lets transactions that only append run
//     concurrently, so both anti-joins can miss each other's rows. After
//     the transaction, a DELETE keeps one row per event id — the one with
//     the smallest load id, a rule every commit applies alike. Mutating
//     DML on one table is serialized, and the last commit's DELETE starts
//     after every such insert committed, so the table converges to one
//     row per id.
func (w *Warehouse) CommitChunk(ctx context.Context, loadID, source string, c staging.Chunk) error {
	if c.Rows == 0 && c.Quarantined == 0 {
		return nil
	}
	if done, err := w.stagedOrCommitted(ctx, loadID, c); err != nil || done {
		return err
	}
	params, err := commitParams(loadID, source, c)
	if err != nil {
		return err
	}
	script := w.commitScript(loadID, c)
	start := func(id string) (*bigquery.Job, error) {
		w.observed(Statement{What: "commit chunk", SQL: script})
		q := w.bq.Query(script)
		q.Parameters = params
		q.Location = w.location
		q.JobID = id
		return q.Run(ctx)
	}
	inLedger := func() (bool, error) {
		committed, err := w.Committed(ctx, loadID)
		return committed[c.Index], err
	}
	jobID := tableName("ktpipe_commit_"+w.dataset+"_", loadID, c.Index)
	return w.runOnce(ctx, fmt.Sprintf("commit chunk %d of %s", c.Index, loadID), jobID, start, inLedger)
}

func commitParams(loadID, source string, c staging.Chunk) ([]bigquery.QueryParameter, error) {
	minDate, maxDate := c.MinDate, c.MaxDate
	if minDate == "" {
		minDate, maxDate = "1970-01-01", "1970-01-01"
	}
	lo, err := dateParam(minDate)
	if err != nil {
		return nil, err
	}
	hi, err := dateParam(maxDate)
	if err != nil {
		return nil, err
	}
	return []bigquery.QueryParameter{
		{Name: "load_id", Value: loadID}, {Name: "chunk", Value: int64(c.Index)}, {Name: "source", Value: source},
		{Name: "rows", Value: c.Rows}, {Name: "quarantined", Value: c.Quarantined},
		{Name: "min_date", Value: lo}, {Name: "max_date", Value: hi},
	}, nil
}

// commitScript is CommitChunk's SQL. The dedup DELETEs use uncorrelated
// IN subqueries: on the emulator a correlated subquery rescans the table
// per row.
func (w *Warehouse) commitScript(loadID string, c staging.Chunk) string {
	stg, qstg := w.ref(tableName("stg_", loadID, c.Index)), w.ref(tableName("qstg_", loadID, c.Index))
	raw, fact, quar, ledger := w.ref(schemas.TableRaw), w.ref(schemas.TableFact), w.ref(schemas.TableQuarantine), w.ref(schemas.TableLedger)
	script := "BEGIN TRANSACTION;\n"
	if c.Rows > 0 {
		script += fmt.Sprintf(`
INSERT INTO %[1]s SELECT s.* FROM %[2]s s
WHERE s.event_id NOT IN (SELECT r.event_id FROM %[1]s r WHERE r.load_id = @load_id AND r.event_date BETWEEN @min_date AND @max_date);
INSERT INTO %[3]s SELECT s.* FROM %[2]s s
WHERE s.event_id NOT IN (SELECT f.event_id FROM %[3]s f WHERE f.event_date BETWEEN @min_date AND @max_date);
`, raw, stg, fact)
	}
	if c.Quarantined > 0 {
		script += fmt.Sprintf(`
INSERT INTO %[1]s SELECT q.* FROM %[2]s q
WHERE q.load_id = @load_id AND q.record_hash NOT IN (SELECT record_hash FROM %[1]s);
`, quar, qstg)
	}
	script += fmt.Sprintf(`
INSERT INTO %[1]s (load_id, chunk, source, %[2]s, quarantined, committed_at)
SELECT @load_id, @chunk, @source, @rows, @quarantined, CURRENT_TIMESTAMP()
FROM (SELECT 1) WHERE NOT EXISTS (SELECT 1 FROM %[1]s WHERE load_id = @load_id AND chunk = @chunk);
COMMIT TRANSACTION;
`, ledger, "`rows`")
	// The duplicates are found once into a temp table: on the emulator a
	// subquery named twice in one DELETE is evaluated per row.
	if c.Rows > 0 {
		script += fmt.Sprintf(`
CREATE TEMP TABLE fact_dups AS
SELECT g.event_id, MIN(g.load_id) AS keep FROM %[1]s g
WHERE g.event_date BETWEEN @min_date AND @max_date AND g.event_id IN (SELECT s.event_id FROM %[2]s s)
GROUP BY g.event_id HAVING COUNT(*) > 1;
DELETE FROM %[1]s f
WHERE f.event_date BETWEEN @min_date AND @max_date
  AND f.event_id IN (SELECT d.event_id FROM fact_dups d)
  AND CONCAT(f.event_id, '/', f.load_id) NOT IN (SELECT CONCAT(d.event_id, '/', d.keep) FROM fact_dups d);
`, fact, stg)
	}
	if c.Quarantined > 0 {
		script += fmt.Sprintf(`
CREATE TEMP TABLE quarantine_dups AS
SELECT g.record_hash, MIN(g.load_id) AS keep FROM %[1]s g
WHERE g.record_hash IN (SELECT q.record_hash FROM %[2]s q WHERE q.load_id = @load_id)
GROUP BY g.record_hash HAVING COUNT(*) > 1;
DELETE FROM %[1]s x
WHERE x.record_hash IN (SELECT q.record_hash FROM %[2]s q WHERE q.load_id = @load_id)
  AND x.record_hash IN (SELECT d.record_hash FROM quarantine_dups d)
  AND CONCAT(x.record_hash, '/', x.load_id) NOT IN (SELECT CONCAT(d.record_hash, '/', d.keep) FROM quarantine_dups d);
`, quar, qstg)
	}
	return script
}

// ErrStagingLost says a chunk's staging table is gone or wrong and the
// chunk is not in the ledger: stage it again (a replay does).
var ErrStagingLost = errors.New("staging table lost before commit")

// stagedOrCommitted checks a chunk before its commit: its staging tables
// must hold exactly the chunk's rows. Missing tables are fine only when
// the ledger has the chunk (a previous attempt committed it and dropped
// them); done is then true.
func (w *Warehouse) stagedOrCommitted(ctx context.Context, loadID string, c staging.Chunk) (done bool, err error) {
	checks := []struct {
		table string
		want  int64
	}{{tableName("stg_", loadID, c.Index), c.Rows}, {tableName("qstg_", loadID, c.Index), c.Quarantined}}
	for _, ch := range checks {
		if ch.want == 0 {
			continue
		}
		n, err := w.countRows(ctx, ch.table)
		if err != nil {
			return false, err
		}
		if n == -1 {
			committed, err := w.Committed(ctx, loadID)
			if err != nil {
				return false, err
			}
			if committed[c.Index] {
				return true, nil
			}
			return false, fmt.Errorf("chunk %d of %s: %w", c.Index, loadID, ErrStagingLost)
		}
		if n != ch.want {
			return false, fmt.Errorf("chunk %d of %s: %s has %d rows, want %d: %w", c.Index, loadID, ch.table, n, ch.want, ErrStagingLost)
		}
	}
	return false, nil
}

// DropStaging removes a committed chunk's staging tables.
func (w *Warehouse) DropStaging(ctx context.Context, loadID string, chunk int) error {
	for _, prefix := range []string{"stg_", "qstg_"} {
		if err := w.ds.Table(tableName(prefix, loadID, chunk)).Delete(ctx); err != nil && !isNotFound(err) {
			return fmt.Errorf("drop staging %s%s/%d: %w", prefix, loadID, chunk, err)
		}
	}
	return nil
}

// Committed returns the chunk numbers of loadID the ledger records.
func (w *Warehouse) Committed(ctx context.Context, loadID string) (map[int]bool, error) {
	rows, err := w.query(ctx, "read ledger", fmt.Sprintf("SELECT chunk FROM %s WHERE load_id = @load_id", w.ref(schemas.TableLedger)),
		bigquery.QueryParameter{Name: "load_id", Value: loadID})
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	for _, r := range rows {
		done[int(r["chunk"].(int64))] = true
	}
	return done, nil
}

// Completeness is the end-of-load check (declared in payload: CheckLoad
// returns it to workflows).
type Completeness = payload.Completeness

// CheckLoad counts what a load left in the warehouse. The fact table is
// read only in the partitions the load's rows fall in: the commit's
// anti-join and convergence DELETE use the same bound (an event id lives
// in its event's date partition), and an unbounded NOT IN read every
// event id of the whole table after every load. Parameters, not a
// subquery, bound it: BigQuery prunes partitions only by constants and
// parameters.
func (w *Warehouse) CheckLoad(ctx context.Context, loadID string) (Completeness, error) {
	what := "check load " + loadID
	param := bigquery.QueryParameter{Name: "load_id", Value: loadID}
	rows, err := w.query(ctx, what, fmt.Sprintf(`
SELECT COUNT(*) AS raw_rows, MIN(event_date) AS min_date, MAX(event_date) AS max_date,
  (SELECT IFNULL(SUM(`+"`rows`"+`), 0) FROM %[2]s WHERE load_id = @load_id) AS ledger_rows,
  (SELECT IFNULL(SUM(quarantined), 0) FROM %[2]s WHERE load_id = @load_id) AS ledger_quar
FROM %[1]s WHERE load_id = @load_id`, w.ref(schemas.TableRaw), w.ref(schemas.TableLedger)), param)
	if err != nil {
		return Completeness{}, err
	}
	if len(rows) != 1 {
		return Completeness{}, fmt.Errorf("%s: %d result rows", what, len(rows))
	}
	r := rows[0]
	c := Completeness{RawRows: asInt(r["raw_rows"]), LedgerRows: asInt(r["ledger_rows"]), LedgerQuar: asInt(r["ledger_quar"])}
	if c.RawRows == 0 {
		return c, nil
	}
	minDate, ok1 := r["min_date"].(civil.Date)
	maxDate, ok2 := r["max_date"].(civil.Date)
	if !ok1 || !ok2 {
		return Completeness{}, fmt.Errorf("%s: event dates of the load's raw rows: got %T and %T", what, r["min_date"], r["max_date"])
	}
	missing, err := w.query(ctx, what, fmt.Sprintf(`
SELECT COUNT(*) AS missing FROM %[1]s r
WHERE r.load_id = @load_id AND r.event_date BETWEEN @min_date AND @max_date
  AND r.event_id NOT IN (SELECT f.event_id FROM %[2]s f WHERE f.event_date BETWEEN @min_date AND @max_date)`,
		w.ref(schemas.TableRaw), w.ref(schemas.TableFact)),
		param, bigquery.QueryParameter{Name: "min_date", Value: minDate}, bigquery.QueryParameter{Name: "max_date", Value: maxDate})
	if err != nil {
		return Completeness{}, err
	}
	if len(missing) != 1 {
		return Completeness{}, fmt.Errorf("%s: %d result rows", what, len(missing))
	}
	c.MissingInFact = asInt(missing[0]["missing"])
	return c, nil
}

func asInt(v bigquery.Value) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return 0
}
