package warehouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
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
	sum, err := fileHash(f)
	if err != nil {
		return fmt.Errorf("stage %s: %w", table, err)
	}
	jobID := fmt.Sprintf("%s_%s", tableName("ktpipe_"+kind+"_", loadID, chunk), sum)
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

// fileHash is the first 16 hex digits of f's SHA-256: what a load
// job's id takes from the file, so another content gets another job.
func fileHash(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// MaxBatchChunks bounds the chunks one commit transaction takes. Each
// chunk brings up to two staging tables, and BigQuery allows a query
// 1,000 tables: 480 chunks' 960 and the eleven tables the script reads or
// writes besides (raw, fact, fact_usage, fact_users, quarantine, ledger,
// commit_log, commit_chunks, the temps new_rows, added and ledger_before) stay
// below it whether the limit counts per statement or per script. Each
// chunk adds a line of SQL to each of the script's unions: 430 KB at the
// bound with ordinary names, and a set whose script would pass
// BigQuery's 1,024 KB (a long dataset name) is committed in parts that
// fit (fitQueryText). 480 chunks of at most MaxChunkRows rows each is
// also what one transaction holds at most, so that a failed one redoes a
// bounded part: 24M rows at the default KTPIPE_CHUNK_ROWS, and a whole
// export when its chunks grew to make it one commit (ChunkRowsFor).
//
// The fewer transactions a day, the fewer times the fact partition's ids
// and the quarantine's window are read (each commit reads them whatever
// its size): at 100M events a day through pull and webhooks the
// compaction commits a 4-hour run's 800-odd chunks in 3 transactions (a
// round of 500 loads in 2, the rest in 1), where 200 chunks a
// transaction took 5 (README, "What the design costs on BigQuery").
const MaxBatchChunks = 480

// MaxChunkRows is the most rows a chunk holds: KTPIPE_CHUNK_ROWS' upper
// bound, and how far ChunkRowsFor grows a chunk.
const MaxChunkRows = 1_000_000

// ChunkRowsFor is how many rows each chunk of a load takes so that the
// load, records records, is at most maxChunks chunks (MaxBatchChunks: one
// commit): chunkRows (KTPIPE_CHUNK_ROWS), unless the load would then be
// more, and then as many as make it maxChunks, up to MaxChunkRows (at
// MaxBatchChunks, a load of 480M records). A load of several commits
// pays twice for each commit after the first: the fact partitions it
// touches are read again, and so are the raw rows the earlier commits
// landed (the raw guard). At 100M events a day, 50,000-row chunks make a
// day's export 2,000 chunks and 5 commits; 208,334-row chunks make it 480
// and one. records is what the source says the load holds (an export's
// row_count; 0 when unknown, which leaves chunkRows). A chunk also closes
// at its byte bound (staging.GrownChunkBytes), so a load of unusually
// large records may still take more than one commit.
func ChunkRowsFor(records int64, chunkRows, maxChunks int) int {
	if records <= 0 || maxChunks <= 0 || chunkRows >= MaxChunkRows {
		return chunkRows
	}
	need := records / int64(maxChunks)
	if records%int64(maxChunks) != 0 {
		need++
	}
	return int(max(int64(chunkRows), min(need, MaxChunkRows)))
}

// quarantineDedupWindow bounds how far back a quarantined record is looked
// for when the same record arrives again: the quarantine is partitioned by
// quarantined_at, so without it every commit would read every record hash
// ever quarantined. A record resent after the window is quarantined again
// (a second row with the same record_hash); the fact table is unaffected.
const quarantineDedupWindow = 30 * 24 * time.Hour

// eventKeySQL is the fact table's event_key computed from an event id
// column: the UUID's 16 bytes (FROM_HEX reads either case, as
// schemas.ParseUUID does). For ids validated as UUIDs: FROM_HEX fails on
// any other.
func eventKeySQL(col string) string {
	return fmt.Sprintf("FROM_HEX(REPLACE(%s, '-', ''))", col)
}

// notInFactSQL says that the record whose id is in idCol is not in the
// fact table's partitions @lo..@hi, looking it up by event_key: true for
// an id that is not a UUID (anyIDKeySQL), which no fact row has.
func notInFactSQL(idCol, fact string) string {
	return fmt.Sprintf("(%[1]s IS NULL OR %[1]s NOT IN (%[2]s))", anyIDKeySQL(idCol), factKeysSQL(fact, "@lo", "@hi"))
}

// factKeysSQL is the fact table's event keys in the event_date
// partitions between the parameters lo and hi, the list every "not in
// fact yet" asks about. It leaves out NULL keys, which no commit writes:
// NOT IN a list holding a NULL finds nothing.
func factKeysSQL(fact, lo, hi string) string {
	return fmt.Sprintf("SELECT f.event_key FROM %s f WHERE f.event_date BETWEEN %s AND %s AND f.event_key IS NOT NULL", fact, lo, hi)
}

// anyIDKeySQL is eventKeySQL for ids that need not be UUIDs (a
// quarantined record's): NULL for one that is not an 8-4-4-4-12 hex
// UUID, as schemas.ParseUUID reads one, so that no other text (the same
// hex digits without hyphens) passes for the event's id.
func anyIDKeySQL(col string) string {
	return fmt.Sprintf("IF(REGEXP_CONTAINS(%[1]s, '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'), %[2]s, NULL)",
		col, eventKeySQL(col))
}

// recordKeySQL is the quarantine's record_key computed from a
// record_hash column (64 hex digits of SHA-256): its first 16 bytes.
// Two records alike in those 128 bits are one record to the dedup; among
// the window's records (30 days, 30 million at 1% of 100 million a day)
// the odds that any two are is about 10^-24.
func recordKeySQL(col string) string {
	return fmt.Sprintf("FROM_HEX(SUBSTR(%s, 1, 32))", col)
}

// CommitChunk commits one staged chunk (CommitBatch of one).
func (w *Warehouse) CommitChunk(ctx context.Context, loadID, source string, c staging.Chunk) error {
	return w.CommitBatch(ctx, loadID, source, []staging.Chunk{c})
}

// CommitBatch commits staged chunks of one load: CommitLoads of one.
func (w *Warehouse) CommitBatch(ctx context.Context, loadID, source string, chunks []staging.Chunk) error {
	return w.CommitLoads(ctx, []LoadChunks{{LoadID: loadID, Source: source, Chunks: chunks}})
}

// LoadChunks is one load's staged chunks, for CommitLoads.
type LoadChunks struct {
	LoadID, Source string
	Chunks         []staging.Chunk
}

// CommitLoads moves the staged chunks of one or more loads into the raw,
// fact and quarantine tables and records them in the ledger, as one
// transaction however many chunks and loads it holds (up to
// MaxBatchChunks chunks, all loads together): a load of 2,000 chunks is
// 5 commits, not 2,000, and a compaction of many small loads is one.
// A load may come with a subset of its chunks (a load larger than the
// bound spans several transactions). Every statement is guarded so that
// running it again adds nothing:
//   - raw gets each load's rows not already landed for that load (raw
//     keeps every load's rows, as committing the loads one by one did, so
//     CheckLoads counts each load alike);
//   - fact gets rows whose event id it does not hold yet, looking only at
//     the event_date partitions of all the chunks' rows (an id's date
//     never changes, since it comes from the event's own timestamp);
//   - quarantine gets records whose hash it does not hold yet, looking back
//     quarantineDedupWindow;
//   - the ledger gets one row per (load, chunk), with its load's source
//     and how many of its rows were new to fact (the audit's resends).
//
// An event id or record in two chunks of the set lands once in fact and
// quarantine, from the smallest load id and then the lowest chunk: the
// row converge would keep (MIN(load_id)) had the loads raced.
//
// This is an anti-join INSERT rather than MERGE: it is correct on
// BigQuery, and MERGE on the emulator refuses subquery sources and grows
// with target × source. On BigQuery the script runs as one transaction,
// so readers see the set all at once. Load ids and sources are values:
// they travel as ARRAY<STRING> parameters (@load_ids, @sources), so the
// script's text and parameter count do not grow with the loads. Every
// statement names a parameter: the emulator refuses a script statement
// that uses none.
//
// Two guards cover commits that run at the same time:
//   - the same set: the script runs under a job id derived from a hash of
//     its (load, chunk) pairs (runOnce), so a retry after a worker died
//     waits for the job the dead worker started instead of running a
//     second one;
//   - overlapping loads (a pull and a backfill of the same hours, on two
//     workers): BigQuery lets transactions that only append run
//     concurrently, so both anti-joins can miss each other's rows. After
//     the transaction, converge asks whether a commit landed beside this
//     one (the ledger grew past what its transaction saw, or another
//     commit has not looked yet: mustLook) and
//     only then looks for ids held twice and, only when it finds some,
//     deletes all but the row with the smallest load id, a rule every
//     commit applies alike. The look is a query, not DML: mutating DML on
//     fact_ai_event (BigQuery queues 2 running and 20 pending per table)
//     runs only when a race doubled a row.
func (w *Warehouse) CommitLoads(ctx context.Context, loads []LoadChunks) error {
	if err := checkLoadSet(loads); err != nil {
		return err
	}
	var todo []LoadChunks
	for _, l := range loads {
		staged, err := w.batchState(ctx, l.LoadID, l.Chunks)
		if err != nil {
			return err
		}
		if len(staged) > 0 {
			slices.SortFunc(staged, func(a, b staging.Chunk) int { return a.Index - b.Index })
			todo = append(todo, LoadChunks{LoadID: l.LoadID, Source: l.Source, Chunks: staged})
		}
	}
	if len(todo) == 0 {
		return nil
	}
	// Sorted by load id, as MIN(load_id) orders them: the first load is
	// the one whose rows win, and the script's text and job id do not
	// depend on the order the caller gave.
	slices.SortFunc(todo, func(a, b LoadChunks) int { return strings.Compare(a.LoadID, b.LoadID) })
	for _, set := range w.fitQueryText(todo) {
		if err := w.commitTransaction(ctx, set); err != nil {
			return err
		}
		if w.onCommit != nil {
			if err := w.onCommit(); err != nil {
				return err
			}
		}
		if err := w.converge(ctx, set); err != nil {
			return err
		}
	}
	return nil
}

// maxScriptBytes is what a commit script may be: BigQuery takes a
// query's text up to 1,024 KB; the rest is margin.
const maxScriptBytes = 1_000_000

// fitQueryText splits a set whose commit script would be longer than
// maxScriptBytes into halves (of its chunks, in order), again until each
// fits. At MaxBatchChunks with ordinary names a script is about 430 KB,
// but its text grows with the table references, and a dataset name may
// be 1,024 characters. The split depends only on the set, so a retry
// commits the same halves under the same job ids.
func (w *Warehouse) fitQueryText(todo []LoadChunks) [][]LoadChunks {
	n := len(allChunks(todo))
	if n < 2 || len(w.commitScript(todo)) <= maxScriptBytes {
		return [][]LoadChunks{todo}
	}
	first, rest := splitChunks(todo, n/2)
	return append(w.fitQueryText(first), w.fitQueryText(rest)...)
}

// splitChunks splits a set of loads' chunks, in order, after k chunks.
func splitChunks(loads []LoadChunks, k int) (first, rest []LoadChunks) {
	for _, l := range loads {
		switch {
		case k >= len(l.Chunks):
			first = append(first, l)
		case k <= 0:
			rest = append(rest, l)
		default:
			first = append(first, LoadChunks{LoadID: l.LoadID, Source: l.Source, Chunks: l.Chunks[:k]})
			rest = append(rest, LoadChunks{LoadID: l.LoadID, Source: l.Source, Chunks: l.Chunks[k:]})
		}
		k -= len(l.Chunks)
	}
	return first, rest
}

// checkLoadSet refuses a set CommitLoads cannot commit as one: more than
// MaxBatchChunks chunks, a load without an id, or a load or chunk named
// twice (its ledger row would be written twice).
func checkLoadSet(loads []LoadChunks) error {
	n := 0
	seen := map[string]map[int]bool{}
	for _, l := range loads {
		if l.LoadID == "" {
			return errors.New("commit loads: a load without a load id")
		}
		if seen[l.LoadID] != nil {
			return fmt.Errorf("commit loads: load %s given twice", l.LoadID)
		}
		seen[l.LoadID] = map[int]bool{}
		for _, c := range l.Chunks {
			if seen[l.LoadID][c.Index] {
				return fmt.Errorf("commit loads: chunk %d of %s given twice", c.Index, l.LoadID)
			}
			seen[l.LoadID][c.Index] = true
			if _, err := chunkDates(c); err != nil { // commitScript writes them
				return fmt.Errorf("commit loads: chunk %d of %s: %w", c.Index, l.LoadID, err)
			}
		}
		n += len(l.Chunks)
	}
	if n > MaxBatchChunks {
		return fmt.Errorf("commit loads: %d chunks of %d loads in one transaction, at most MaxBatchChunks (%d)", n, len(loads), MaxBatchChunks)
	}
	return nil
}

// chunkDates is the SQL of a chunk's first and last event dates, for its
// ledger row: DATE literals of dates parsed here (checkLoadSet refuses a
// chunk whose dates do not parse), NULLs for a chunk without rows.
func chunkDates(c staging.Chunk) (string, error) {
	if c.MinDate == "" && c.MaxDate == "" {
		return "CAST(NULL AS DATE) AS min_date, CAST(NULL AS DATE) AS max_date", nil
	}
	lo, err := dateParam(c.MinDate)
	if err != nil {
		return "", err
	}
	hi, err := dateParam(c.MaxDate)
	if err != nil {
		return "", err
	}
	if hi.Before(lo) {
		return "", fmt.Errorf("first event date %s after the last, %s", lo, hi)
	}
	return fmt.Sprintf("DATE '%s' AS min_date, DATE '%s' AS max_date", lo, hi), nil
}

// describe names a set of loads in errors and job descriptions.
func describe(loads []LoadChunks) string {
	n := 0
	for _, l := range loads {
		n += len(l.Chunks)
	}
	if len(loads) == 1 {
		c := loads[0].Chunks
		return fmt.Sprintf("chunks %d..%d (%d) of %s", c[0].Index, c[len(c)-1].Index, n, loads[0].LoadID)
	}
	return fmt.Sprintf("%d chunks of %d loads (%s..%s)", n, len(loads), loads[0].LoadID, loads[len(loads)-1].LoadID)
}

// batchState returns the batch's chunks whose staging tables hold them;
// they are committed (again, which adds nothing, if a previous attempt
// did) and then looked at for doubled rows. The ledger is read only when
// a staging table is missing or short: a committed chunk's tables are
// dropped only after every batch of the load converged, so such a chunk
// needs neither; one not committed is a *StagingLostError.
func (w *Warehouse) batchState(ctx context.Context, loadID string, chunks []staging.Chunk) (staged []staging.Chunk, err error) {
	var committed map[int]bool
	for _, c := range chunks {
		if c.Rows == 0 && c.Quarantined == 0 {
			continue
		}
		lost := w.staged(ctx, loadID, c)
		if errors.Is(lost, ErrStagingLost) {
			if committed == nil {
				if committed, err = w.Committed(ctx, loadID); err != nil {
					return nil, err
				}
			}
			if committed[c.Index] {
				continue
			}
		}
		if lost != nil {
			return nil, lost
		}
		staged = append(staged, c)
	}
	return staged, nil
}

func (w *Warehouse) commitTransaction(ctx context.Context, todo []LoadChunks) error {
	params, err := batchParams(todo)
	if err != nil {
		return err
	}
	params = append(params, bigquery.QueryParameter{Name: "commit_set", Value: setKey(todo)})
	script := w.commitScript(todo)
	start := func(id string) (*bigquery.Job, error) {
		w.observed(Statement{What: "commit batch", SQL: script})
		q := w.bq.Query(script)
		q.Parameters = inSQLOrder(script, params)
		q.Location = w.location
		q.JobID = id
		return q.Run(ctx)
	}
	inLedger := func() (bool, error) {
		committed, err := w.committedSet(ctx, loadIDs(todo))
		if err != nil {
			return false, err
		}
		for _, l := range todo {
			for _, c := range l.Chunks {
				if !committed[l.LoadID][c.Index] {
					return false, nil
				}
			}
		}
		return true, nil
	}
	return w.runOnce(ctx, "commit "+describe(todo), w.commitJobID(todo), start, inLedger)
}

// commitJobID is the commit's job id: the dataset and a hash of the
// set's sorted (load, chunk) pairs, so the same set always gets the same
// id and any other set another. A set of one load keeps the id per-load
// commits had before sets (its first chunk), so that a retry on an
// upgraded worker waits for a commit an older worker started instead of
// running beside it.
func (w *Warehouse) commitJobID(todo []LoadChunks) string {
	if len(todo) == 1 {
		return tableName("ktpipe_batch_"+w.dataset+"_", todo[0].LoadID, todo[0].Chunks[0].Index)
	}
	return "ktpipe_loads_" + w.dataset + "_" + setKey(todo)
}

func loadIDs(loads []LoadChunks) []string {
	ids := make([]string, len(loads))
	for i, l := range loads {
		ids[i] = l.LoadID
	}
	return ids
}

// allChunks are the chunks of every load of the set.
func allChunks(loads []LoadChunks) []staging.Chunk {
	var all []staging.Chunk
	for _, l := range loads {
		all = append(all, l.Chunks...)
	}
	return all
}

// batchParams are the script's parameters: the loads and their sources
// (in the same order), the set's date span and the quarantine window.
func batchParams(loads []LoadChunks) ([]bigquery.QueryParameter, error) {
	chunks := allChunks(loads)
	lo, hi, err := dateSpan(chunks)
	if err != nil {
		return nil, err
	}
	sources := make([]string, len(loads))
	for i, l := range loads {
		sources[i] = l.Source
	}
	// Only parameters the script names: the emulator binds them by
	// position, and an unused one shifts the rest.
	params := []bigquery.QueryParameter{{Name: "load_ids", Value: loadIDs(loads)}, {Name: "sources", Value: sources}}
	if anyTable("stg_", chunks) {
		params = append(params, bigquery.QueryParameter{Name: "min_date", Value: lo}, bigquery.QueryParameter{Name: "max_date", Value: hi})
	}
	if anyTable("qstg_", chunks) {
		params = append(params, bigquery.QueryParameter{Name: "quarantine_since", Value: time.Now().Add(-quarantineDedupWindow)})
	}
	return params, nil
}

// dateSpan is the event_date span of the chunks' rows (1970-01-01 when
// they hold none: a bound that matches no partition).
func dateSpan(chunks []staging.Chunk) (lo, hi civil.Date, err error) {
	minDate, maxDate := "", ""
	for _, c := range chunks {
		if c.MinDate != "" && (minDate == "" || c.MinDate < minDate) {
			minDate = c.MinDate
		}
		if c.MaxDate > maxDate {
			maxDate = c.MaxDate
		}
	}
	if minDate == "" {
		minDate, maxDate = "1970-01-01", "1970-01-01"
	}
	if lo, err = dateParam(minDate); err != nil {
		return lo, hi, err
	}
	hi, err = dateParam(maxDate)
	return lo, hi, err
}

// hasTable says whether chunk c has a staging table of this kind
// (stg_: rows, qstg_: quarantine records).
func hasTable(prefix string, c staging.Chunk) bool {
	if prefix == "qstg_" {
		return c.Quarantined > 0
	}
	return c.Rows > 0
}

// anyTable says whether some chunk has a staging table of this kind.
func anyTable(prefix string, chunks []staging.Chunk) bool {
	for _, c := range chunks {
		if hasTable(prefix, c) {
			return true
		}
	}
	return false
}

// unionStaged is the set's staging tables of one kind as one relation
// with each row's chunk number in _chunk and its load's position in
// @load_ids in _load (rows: stg_, quarantine: qstg_). cols gives the
// columns taken from the tables of the load at that position: a list
// (sameCols) or a whole row (wholeStaged).
func (w *Warehouse) unionStaged(prefix string, loads []LoadChunks, cols func(load int) string) string {
	var parts []string
	for i, l := range loads {
		for _, c := range l.Chunks {
			if !hasTable(prefix, c) {
				continue
			}
			parts = append(parts, fmt.Sprintf("SELECT %s, %d AS _load, %d AS _chunk FROM %s s", cols(i), i, c.Index, w.ref(tableName(prefix, l.LoadID, c.Index))))
		}
	}
	return strings.Join(parts, "\nUNION ALL ")
}

// wholeStaged is a staged row in every column, its load id the load's
// element of @load_ids rather than read: the splitter writes the same id
// in every row of a load, a string longer than the event id, and
// BigQuery bills every column a statement reads (the replaced column is
// not named, as with * EXCEPT). REPLACE keeps the column's place, which
// the inserts' SELECT * relies on. A staging table's load is then known
// by its name alone (tableName), as it is to every other statement.
func wholeStaged(load int) string {
	return fmt.Sprintf("s.* REPLACE (@load_ids[OFFSET(%d)] AS load_id)", load)
}

// sameCols is the same column list for the tables of every load.
func sameCols(list string) func(int) string {
	return func(int) string { return list }
}

// commitScript is CommitLoads' transaction. It reads the set's staged
// rows in every column twice, the least two inserts from them can: once
// into raw (each load's rows, once per event id) and once into fact.
// Neither reads the staged load_id (see wholeStaged). What fact needs is
// decided on narrow columns first: new_rows holds, for each event key
// new to fact (the UUID's bytes, bqschema.FactSchema: the anti-join
// reads 18 bytes a fact row, not event_id's 38), the columns fact_usage
// and fact_users are added from, and the (load, chunk) it is taken from:
// the smallest load id (the loads are sorted, so the lowest position in
// @load_ids, _load), then the lowest chunk. The fact insert then takes,
// of the staged rows whose key new_rows holds, the one first in the same
// order: the row new_rows was decided on, found by the key alone (18
// bytes of new_rows a row, not 38), since no (load, chunk) holds a UUID
// twice (the splitter keeps a chunk's first, by its bytes; an id written
// in upper case elsewhere is another string but the same key). The
// lookup leaves out fact rows whose key is NULL, which every commit
// writes and the migration fills in older rows: were one there, NOT IN
// a list holding a NULL would find nothing new, and no commit would add
// a row. loads must be sorted
// by load id, as CommitLoads sorts them. An IN over one key, not a
// JOIN: the emulator runs a JOIN of a union with a temp table row by row
// (a local run's commits took a minute each), and an IN with an index.
// The ledger's insert joins the union of its entries, a row a chunk, to
// the temp table added, a row a chunk too: at most 480 × 480.
//
// BigQuery bills the columns a statement reads, and two reads in full
// are what two inserts of every column need.
func (w *Warehouse) commitScript(loads []LoadChunks) string {
	raw, fact, quar, ledger := w.ref(schemas.TableRaw), w.ref(schemas.TableFact), w.ref(schemas.TableQuarantine), w.ref(schemas.TableLedger)
	// The ledger first, before any other table is read: however BigQuery
	// takes the transaction's snapshot, no commit that ledger count
	// missed is seen by the anti-joins below (see converge).
	script := fmt.Sprintf(`BEGIN TRANSACTION;
CREATE TEMP TABLE ledger_before AS SELECT (SELECT COUNT(*) FROM %[1]s) AS total,
  (SELECT COUNT(*) FROM %[1]s x WHERE x.load_id IN UNNEST(@load_ids)) AS mine;
`, ledger)
	// Each ledger row records how many of its chunk's rows were new to
	// fact (added, a row a (load, chunk) counted from new_rows): the rest
	// the source had sent before, which the audit counts as resends from
	// the ledger alone. Both temp tables exist only for a set with rows.
	added, addedFrom := "0", ""
	if rows := w.unionStaged("stg_", loads, wholeStaged); rows != "" {
		added, addedFrom = "IFNULL(a.n, 0)", "\nLEFT JOIN added a ON a._load = e.l AND a._chunk = e.chunk"
		narrow := w.unionStaged("stg_", loads, sameCols("s.event_id, s.event_date, s.provider, s.model, s.cost_usd, s.total_tokens, s.`user`"))
		// fact_users' insert names @load_ids only because the emulator
		// refuses a script statement that names no parameter.
		script += fmt.Sprintf(`
INSERT INTO %[1]s SELECT * EXCEPT(_load, _chunk, _n) FROM (
  SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u._load, u.event_id ORDER BY u._chunk) AS _n FROM (
%[3]s) u)
WHERE _n = 1 AND CONCAT(load_id, '/', event_id) NOT IN (SELECT CONCAT(r.load_id, '/', r.event_id) FROM %[1]s r
  WHERE r.load_id IN UNNEST(@load_ids) AND r.event_date BETWEEN @min_date AND @max_date);
CREATE TEMP TABLE new_rows AS SELECT * EXCEPT(_n) FROM (
  SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u.event_key ORDER BY u._load, u._chunk) AS _n FROM (
    SELECT v.*, %[8]s AS event_key FROM (
%[7]s) v) u
  WHERE u.event_key NOT IN (%[9]s))
WHERE _n = 1;
INSERT INTO %[2]s SELECT * EXCEPT(_load, _chunk, _n) FROM (
  SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u.event_key ORDER BY u._load, u._chunk) AS _n FROM (
    SELECT v.*, %[8]s AS event_key FROM (
%[3]s) v) u
  WHERE u.event_key IN (SELECT n.event_key FROM new_rows n))
WHERE _n = 1;
INSERT INTO %[4]s (event_date, provider, model, events, cost, tokens, load_id, chunk)
SELECT n.event_date, n.provider, n.model, COUNT(*), SUM(n.cost_usd), SUM(n.total_tokens), @load_ids[OFFSET(0)], %[6]d
FROM new_rows n GROUP BY n.event_date, n.provider, n.model;
INSERT INTO %[5]s (`+"`user`"+`) SELECT DISTINCT n.`+"`user`"+` FROM new_rows n
WHERE ARRAY_LENGTH(@load_ids) > 0 AND n.`+"`user`"+` NOT IN (SELECT u.`+"`user`"+` FROM %[5]s u);
CREATE TEMP TABLE added AS SELECT r._load, r._chunk, COUNT(*) AS n FROM new_rows r
WHERE ARRAY_LENGTH(@load_ids) > 0 GROUP BY r._load, r._chunk;
`, raw, fact, rows, w.ref(schemas.TableUsage), w.ref(schemas.TableUsers), loads[0].Chunks[0].Index, narrow,
			eventKeySQL("v.event_id"), factKeysSQL(fact, "@min_date", "@max_date"))
	}
	if recs := w.unionStaged("qstg_", loads, wholeStaged); recs != "" {
		script += fmt.Sprintf(`
INSERT INTO %[1]s SELECT * EXCEPT(_load, _chunk, _n) FROM (
  SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u.record_key ORDER BY u._load, u._chunk) AS _n FROM (
    SELECT v.*, %[3]s AS record_key FROM (
%[2]s) v) u)
WHERE _n = 1 AND record_key NOT IN (SELECT q.record_key FROM %[1]s q WHERE q.quarantined_at >= @quarantine_since AND q.record_key IS NOT NULL);
`, quar, recs, recordKeySQL("v.record_hash"))
	}
	// Chunk numbers and counts are the manifest's integers, written with
	// %d as in unionStaged (batchState checked the staging tables hold
	// them): given as parameters, the emulator bound them wrongly (every
	// count 0, or no row at all). A chunk's load is its load's position
	// in @load_ids and @sources, also an integer of ours. Its dates
	// bound the fact partitions its load's check reads (CheckLoads).
	var entries []string
	for i, l := range loads {
		for _, c := range l.Chunks {
			dates, _ := chunkDates(c) // checked by checkLoadSet
			entries = append(entries, fmt.Sprintf("SELECT %d AS l, %d AS chunk, %d AS chunk_rows, %d AS quarantined, %s", i, c.Index, c.Rows, c.Quarantined, dates))
		}
	}
	// commit_log gets the ledger's rows as the transaction began plus
	// those it added, and how many it added: converge compares them with
	// the ledger after the commit (mustLook). commit_chunks gets the
	// set's (load, chunk) pairs, for a set retried as others
	// (overlapUnconverged).
	script += fmt.Sprintf(`
INSERT INTO %[1]s (load_id, chunk, source, %[2]s, quarantined, min_date, max_date, added, committed_at)
SELECT @load_ids[OFFSET(e.l)], e.chunk, @sources[OFFSET(e.l)], e.chunk_rows, e.quarantined, e.min_date, e.max_date, %[6]s, CURRENT_TIMESTAMP()
FROM (%[3]s) e%[7]s
WHERE CONCAT(@load_ids[OFFSET(e.l)], '/', CAST(e.chunk AS STRING)) NOT IN (
  SELECT CONCAT(x.load_id, '/', CAST(x.chunk AS STRING)) FROM %[1]s x WHERE x.load_id IN UNNEST(@load_ids));
INSERT INTO %[4]s (commit_set, what, ledger_rows, chunks_added, logged_at)
SELECT @commit_set, 'commit', b.total + a.n - b.mine, a.n - b.mine, CURRENT_TIMESTAMP()
FROM ledger_before b CROSS JOIN (SELECT COUNT(*) AS n FROM %[1]s x WHERE x.load_id IN UNNEST(@load_ids)) a;
INSERT INTO %[5]s (commit_set, load_id, chunk, logged_at)
SELECT @commit_set, @load_ids[OFFSET(e.l)], e.chunk, CURRENT_TIMESTAMP() FROM (%[3]s) e;
`, ledger, "`rows`", strings.Join(entries, "\n  UNION ALL "), w.ref(schemas.TableCommits), w.ref(schemas.TableCommitChunks), added, addedFrom)
	script += "COMMIT TRANSACTION;\n"
	return script
}

// converge removes rows of the set that a commit beside it doubled
// (removeDoubled), then records in commit_log that the set's commit is
// done with that, and so is every earlier set whose chunks this look and
// earlier ones have all covered (recordLooks): until a set is, every
// other commit looks (see mustLook). An error in recordLooks fails the
// commit like any other statement's: its retry looks again, and records
// again.
func (w *Warehouse) converge(ctx context.Context, loads []LoadChunks) error {
	overlapped, err := w.removeDoubled(ctx, loads)
	if err != nil {
		return err
	}
	sets := []string{setKey(loads)}
	if len(overlapped) > 0 {
		done, err := w.recordLooks(ctx, loads, overlapped)
		if err != nil {
			return err
		}
		sets = append(sets, done...)
	}
	what := "record that " + describe(loads) + " converged"
	return w.exec(ctx, what, fmt.Sprintf("INSERT INTO %s (commit_set, what, ledger_rows, chunks_added, logged_at) SELECT s, 'converged', 0, 0, CURRENT_TIMESTAMP() FROM UNNEST(@commit_sets) AS s",
		w.ref(schemas.TableCommits)), bigquery.QueryParameter{Name: "commit_sets", Value: sets})
}

// removeDoubled finds event ids of the set that fact_ai_event holds
// twice, and records quarantined twice within the window, and only then
// deletes all but the row with the smallest load id (see CommitLoads).
// It looks only when a commit may have landed beside the set's
// (mustLook), and returns the unconverged sets some of whose chunks that
// look covered (overlapUnconverged).
func (w *Warehouse) removeDoubled(ctx context.Context, loads []LoadChunks) (overlapped []string, err error) {
	ids := w.unionStaged("stg_", loads, sameCols("s.event_id"))
	hashes := w.unionStaged("qstg_", loads, sameCols("s.record_hash"))
	if ids == "" && hashes == "" {
		return nil, nil
	}
	look, recommitted, err := w.mustLook(ctx, loads)
	if err != nil || !look {
		return nil, err
	}
	// Only a set that found chunks already in the ledger holds chunks of
	// a set committed before its transaction began: a set that added all
	// its chunks has no earlier set to ask about. It asks before its
	// look, so the look sees those sets' rows and every row committed
	// before them; a row doubled with a commit that landed later is that
	// commit's to remove, since its ledger count missed this set's rows
	// and it looks.
	if recommitted {
		if overlapped, err = w.overlapUnconverged(ctx, loads); err != nil {
			return nil, err
		}
	}
	lo, hi, err := dateSpan(allChunks(loads))
	if err != nil {
		return nil, err
	}
	// @load_id is the first load's: the look names it (see batchParams),
	// and fact_usage's correction rows are recorded under it.
	loadID := loads[0].LoadID
	since := time.Now().Add(-quarantineDedupWindow)
	params := []bigquery.QueryParameter{{Name: "load_id", Value: loadID}} // see batchParams
	if ids != "" {
		params = append(params, bigquery.QueryParameter{Name: "min_date", Value: lo}, bigquery.QueryParameter{Name: "max_date", Value: hi})
	}
	if hashes != "" {
		params = append(params, bigquery.QueryParameter{Name: "quarantine_since", Value: since})
	}
	fact, quar := w.ref(schemas.TableFact), w.ref(schemas.TableQuarantine)
	// What holds the batch's ids or hashes twice, found once into a temp
	// table: on the emulator a subquery named twice in one DELETE is
	// evaluated per row.
	// Fact rows are one an event key, as the commit's anti-join keeps them.
	doubledFact := func(cols string) string {
		return fmt.Sprintf(`SELECT %s FROM %s g
WHERE g.event_date BETWEEN @min_date AND @max_date AND g.event_key IN (SELECT %s FROM (%s) u)
GROUP BY g.event_key HAVING COUNT(*) > 1`, cols, fact, eventKeySQL("u.event_id"), ids)
	}
	doubledQuar := func(cols string) string {
		return fmt.Sprintf(`SELECT %s FROM %s g
WHERE g.quarantined_at >= @quarantine_since AND g.record_key IN (SELECT %s FROM (%s) u)
GROUP BY g.record_key HAVING COUNT(*) > 1`, cols, quar, recordKeySQL("u.record_hash"), hashes)
	}
	factDups, quarDups := doubledFact("g.event_key, MIN(g.load_id) AS keep"), doubledQuar("g.record_key, MIN(g.load_id) AS keep")
	// The look counts ids held twice, reading only the ids: the load ids
	// are read only when there is something to remove.
	var counts []string
	if ids != "" {
		counts = append(counts, "(SELECT COUNT(*) FROM ("+doubledFact("g.event_key")+")) AS fact_dups")
	}
	if hashes != "" {
		counts = append(counts, "(SELECT COUNT(*) FROM ("+doubledQuar("g.record_key")+")) AS quarantine_dups")
	}
	what := "look for doubled rows of " + describe(loads)
	found, err := w.query(ctx, what, "SELECT "+strings.Join(counts, ", ")+" FROM (SELECT @load_id AS l)", params...)
	if err != nil {
		return nil, err
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%s: %d result rows", what, len(found))
	}
	factDoubled, quarDoubled := int64(0), int64(0)
	if ids != "" {
		if factDoubled, err = strictInt(found[0]["fact_dups"]); err != nil {
			return nil, fmt.Errorf("%s: fact_dups: %w", what, err)
		}
	}
	if hashes != "" {
		if quarDoubled, err = strictInt(found[0]["quarantine_dups"]); err != nil {
			return nil, fmt.Errorf("%s: quarantine_dups: %w", what, err)
		}
	}
	// The script gets only the parameters its branches name (see
	// batchParams).
	script := ""
	fix := []bigquery.QueryParameter{{Name: "load_id", Value: loadID}}
	if factDoubled > 0 {
		// The rows removed were counted in fact_usage by the commit that
		// inserted them: take them out again, in the same transaction.
		doubled := `f.event_date BETWEEN @min_date AND @max_date
  AND f.event_key IN (SELECT d.event_key FROM fact_dups d)
  AND CONCAT(TO_HEX(f.event_key), '/', f.load_id) NOT IN (SELECT CONCAT(TO_HEX(d.event_key), '/', d.keep) FROM fact_dups d)`
		script += fmt.Sprintf(`
CREATE TEMP TABLE fact_dups AS %[2]s;
INSERT INTO %[4]s (event_date, provider, model, events, cost, tokens, load_id, chunk)
SELECT f.event_date, f.provider, f.model, 0 - COUNT(*), 0 - SUM(f.cost_usd), 0 - SUM(f.total_tokens), @load_id, -1
FROM %[1]s f WHERE %[3]s
GROUP BY f.event_date, f.provider, f.model;
DELETE FROM %[1]s f WHERE %[3]s;
`, fact, factDups, doubled, w.ref(schemas.TableUsage))
		fix = append(fix, bigquery.QueryParameter{Name: "min_date", Value: lo}, bigquery.QueryParameter{Name: "max_date", Value: hi})
	}
	if quarDoubled > 0 {
		script += fmt.Sprintf(`
CREATE TEMP TABLE quarantine_dups AS %[2]s;
DELETE FROM %[1]s x
WHERE x.quarantined_at >= @quarantine_since
  AND x.record_key IN (SELECT d.record_key FROM quarantine_dups d)
  AND CONCAT(TO_HEX(x.record_key), '/', x.load_id) NOT IN (SELECT CONCAT(TO_HEX(d.record_key), '/', d.keep) FROM quarantine_dups d);
`, quar, quarDups)
		fix = append(fix, bigquery.QueryParameter{Name: "quarantine_since", Value: since})
	}
	if script == "" {
		return overlapped, nil
	}
	// A row in commit_log, in the removal's transaction: the audit carries
	// its counts while commit_log gains no row (MeasureAudit). mustLook
	// reads only 'commit' rows and the unconverged sets only 'converged'
	// ones, under the set's own key, which its 'commit' row already put
	// in commit_log (one older than commitLogWindow is brought back into
	// it until the set converges).
	script += fmt.Sprintf("INSERT INTO %s (commit_set, what, ledger_rows, chunks_added, logged_at) SELECT @commit_set, 'removed', 0, 0, CURRENT_TIMESTAMP();\n",
		w.ref(schemas.TableCommits))
	fix = append(fix, bigquery.QueryParameter{Name: "commit_set", Value: setKey(loads)})
	return overlapped, w.exec(ctx, "remove doubled rows of "+describe(loads), "BEGIN TRANSACTION;\n"+script+"COMMIT TRANSACTION;\n", fix...)
}

// overlapUnconverged returns the other sets of the last
// commitLogWindow that have not recorded that they converged and share
// chunks with this one: a set retried as others, as when a compaction
// re-lists after a run that died between its commit and its look, with
// more loads or split one by one. This set's look reads every event id
// and record hash of the shared chunks; recordLooks then converges a set
// whose chunks such looks have all covered. Without it, every commit
// would look for commitLogWindow. A set committed by an older version
// has no commit_chunks rows and converges only by its own retry.
func (w *Warehouse) overlapUnconverged(ctx context.Context, loads []LoadChunks) ([]string, error) {
	what := "find unconverged sets sharing chunks with " + describe(loads)
	rows, err := w.query(ctx, what, fmt.Sprintf(`SELECT DISTINCT k.commit_set FROM %[1]s k
WHERE k.logged_at >= @since AND k.commit_set != @commit_set
  AND CONCAT(k.load_id, '/', CAST(k.chunk AS STRING)) IN UNNEST(@pairs)
  AND k.commit_set IN (%[2]s)`,
		w.ref(schemas.TableCommitChunks), otherUnconvergedSets(w.ref(schemas.TableCommits))),
		bigquery.QueryParameter{Name: "since", Value: time.Now().Add(-commitLogWindow)},
		bigquery.QueryParameter{Name: "commit_set", Value: setKey(loads)},
		bigquery.QueryParameter{Name: "pairs", Value: chunkPairs(loads)})
	if err != nil {
		return nil, err
	}
	return commitSets(what, rows)
}

// recordLooks writes to commit_looks the chunks this set shares with the
// unconverged sets overlapUnconverged found before its look, then
// returns those of them whose every chunk a look has now covered, this
// one's or earlier ones': they converged. Written before it is read, so
// of two sets that covered halves of one, the later to read sees both.
func (w *Warehouse) recordLooks(ctx context.Context, loads []LoadChunks, overlapped []string) ([]string, error) {
	chunks, looks := w.ref(schemas.TableCommitChunks), w.ref(schemas.TableCommitLooks)
	since := bigquery.QueryParameter{Name: "since", Value: time.Now().Add(-commitLogWindow)}
	sets := bigquery.QueryParameter{Name: "sets", Value: overlapped}
	if err := w.exec(ctx, "record the chunks of unconverged sets "+describe(loads)+" looked at", fmt.Sprintf(`INSERT INTO %[1]s (commit_set, load_id, chunk, logged_at)
SELECT k.commit_set, k.load_id, k.chunk, CURRENT_TIMESTAMP() FROM %[2]s k
WHERE k.logged_at >= @since AND k.commit_set IN UNNEST(@sets) AND CONCAT(k.load_id, '/', CAST(k.chunk AS STRING)) IN UNNEST(@pairs)`, looks, chunks),
		since, sets, bigquery.QueryParameter{Name: "pairs", Value: chunkPairs(loads)}); err != nil {
		return nil, err
	}
	what := "find sets converged by the looks of " + describe(loads)
	rows, err := w.query(ctx, what, fmt.Sprintf(`SELECT k.commit_set FROM %[1]s k
LEFT JOIN (SELECT DISTINCT l.commit_set, l.load_id, l.chunk FROM %[2]s l WHERE l.logged_at >= @since AND l.commit_set IN UNNEST(@sets)) d
  ON d.commit_set = k.commit_set AND d.load_id = k.load_id AND d.chunk = k.chunk
WHERE k.logged_at >= @since AND k.commit_set IN UNNEST(@sets)
GROUP BY k.commit_set HAVING COUNTIF(d.commit_set IS NULL) = 0`, chunks, looks), since, sets)
	if err != nil {
		return nil, err
	}
	return commitSets(what, rows)
}

// chunkPairs are the set's chunks as "load/chunk".
func chunkPairs(loads []LoadChunks) []string {
	var pairs []string
	for _, l := range loads {
		for _, c := range l.Chunks {
			pairs = append(pairs, fmt.Sprintf("%s/%d", l.LoadID, c.Index))
		}
	}
	return pairs
}

// commitSets reads a result of one commit_set column.
func commitSets(what string, rows []map[string]bigquery.Value) ([]string, error) {
	sets := make([]string, 0, len(rows))
	for _, r := range rows {
		set, ok := r["commit_set"].(string)
		if !ok {
			return nil, fmt.Errorf("%s: commit_set: got %T", what, r["commit_set"])
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// commitLogWindow is how far back mustLook reads commit_log (partitioned
// by its time): a set's own row older than that is not found, and the
// set looks, as when it cannot tell; another commit's missing
// "converged" row older than that no longer makes every commit look.
const commitLogWindow = 7 * 24 * time.Hour

// mustLook says whether a commit may have doubled rows of this set that
// are still there: false only when the set's transaction added a ledger
// row for each of its chunks, the ledger holds now exactly the rows that
// transaction began with plus those, and every other commit of the last
// commitLogWindow has recorded that it converged.
//
// Every commit adds its ledger rows in its transaction, and a
// transaction reads one snapshot (the script reads the ledger first, so
// its count is no later than any other read). Two commits that doubled
// an id each missed the other: the one that committed second finds the
// first one's ledger rows, which its count lacked, and looks. A commit
// that lands after this one's check finds this one's rows the same way.
// A commit that died before its look (its worker killed, its retries
// used up) leaves no "converged" row, so the commits after it look,
// and one that carries the doubled ids again (a replay) removes them.
// A set whose chunks were already in the ledger may be one whose first
// commit never looked, and looks; so does a set whose own row is not
// found (committed by an older version, or long ago). Commits of every
// version add ledger rows, so one by an older worker is seen too.
//
// It reads two small tables: the look it saves reads the set's date span
// of fact ids and the quarantine's window of hashes.
//
// recommitted says the set found some of its chunks already in the
// ledger, or cannot tell (see overlapUnconverged).
func (w *Warehouse) mustLook(ctx context.Context, loads []LoadChunks) (look, recommitted bool, err error) {
	what := "look for a commit beside " + describe(loads)
	commits := w.ref(schemas.TableCommits)
	rows, err := w.query(ctx, what, fmt.Sprintf(`SELECT (SELECT COUNT(*) FROM %[1]s) AS ledger_now, c.ledger_rows, c.chunks_added,
  (SELECT COUNT(*) FROM (%[3]s)) AS unconverged
FROM %[2]s c WHERE c.commit_set = @commit_set AND c.what = 'commit' AND c.logged_at >= @since`, w.ref(schemas.TableLedger), commits, otherUnconvergedSets(commits)),
		bigquery.QueryParameter{Name: "commit_set", Value: setKey(loads)},
		bigquery.QueryParameter{Name: "since", Value: time.Now().Add(-commitLogWindow)})
	if err != nil {
		return false, false, err
	}
	// No row: not committed by this version within the window. More than
	// one: committed again under another job id (runOnce), which added
	// nothing the second time.
	if len(rows) != 1 {
		return true, true, nil
	}
	var n [4]int64
	for i, col := range []string{"ledger_now", "ledger_rows", "chunks_added", "unconverged"} {
		if n[i], err = strictInt(rows[0][col]); err != nil {
			return false, false, fmt.Errorf("%s: %s: %w", what, col, err)
		}
	}
	ledgerNow, ledgerSeen, added, unconverged := n[0], n[1], n[2], n[3]
	recommitted = added != int64(len(allChunks(loads)))
	return ledgerNow != ledgerSeen || recommitted || unconverged > 0, recommitted, nil
}

// otherUnconvergedSets is the one definition of a set that has not
// converged, which mustLook counts and overlapUnconverged joins on: the
// sets of commit_log's last commitLogWindow (@since) but @commit_set
// with no 'converged' row.
func otherUnconvergedSets(commitLog string) string {
	return fmt.Sprintf(`SELECT o.commit_set FROM %s o WHERE o.logged_at >= @since AND o.commit_set != @commit_set
    GROUP BY o.commit_set HAVING COUNTIF(o.what = 'converged') = 0`, commitLog)
}

// setKey names a commit's set in commit_log: a hash of its sorted (load,
// chunk) pairs, so two sets share a key only when they hold the same
// chunks (unlike commitJobID, which names a one-load set by its first
// chunk).
func setKey(loads []LoadChunks) string {
	h := sha256.New()
	for _, l := range loads {
		for _, c := range l.Chunks {
			fmt.Fprintf(h, "%s\x00%d\n", l.LoadID, c.Index)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// strictInt reads an INT64 result: a doubled row must not go unremoved
// because a count came back as something else.
func strictInt(v bigquery.Value) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("got %T (%v), want an INT64", v, v)
	}
	return n, nil
}

// ErrStagingLost says a chunk's staging table is gone or wrong and the
// chunk is not in the ledger: stage it again (a replay does).
var ErrStagingLost = errors.New("staging table lost before commit")

// StagingLostError names the load and chunk whose staging is lost.
type StagingLostError struct {
	Load   string
	Chunk  int
	Detail string
}

func (e *StagingLostError) Error() string { return e.Detail + ": " + ErrStagingLost.Error() }
func (e *StagingLostError) Unwrap() error { return ErrStagingLost }

// staged checks a chunk's staging tables: they must hold exactly the
// chunk's rows. A missing or short table is a *StagingLostError.
func (w *Warehouse) staged(ctx context.Context, loadID string, c staging.Chunk) error {
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
			return err
		}
		if n != ch.want {
			detail := fmt.Sprintf("chunk %d of %s: %s has %d rows, want %d", c.Index, loadID, ch.table, n, ch.want)
			if n == -1 {
				detail = fmt.Sprintf("chunk %d of %s: %s is missing", c.Index, loadID, ch.table)
			}
			return &StagingLostError{Load: loadID, Chunk: c.Index, Detail: detail}
		}
	}
	return nil
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
	done, err := w.committedSet(ctx, []string{loadID})
	if err != nil {
		return nil, err
	}
	if done[loadID] == nil {
		return map[int]bool{}, nil
	}
	return done[loadID], nil
}

// committedSet returns, by load, the chunk numbers the ledger records, in
// one query however many loads.
func (w *Warehouse) committedSet(ctx context.Context, loadIDs []string) (map[string]map[int]bool, error) {
	rows, err := w.query(ctx, "read ledger", fmt.Sprintf("SELECT load_id, chunk FROM %s WHERE load_id IN UNNEST(@load_ids)", w.ref(schemas.TableLedger)),
		bigquery.QueryParameter{Name: "load_ids", Value: loadIDs})
	if err != nil {
		return nil, err
	}
	done := map[string]map[int]bool{}
	for _, r := range rows {
		id, _ := r["load_id"].(string)
		if done[id] == nil {
			done[id] = map[int]bool{}
		}
		done[id][int(asInt(r["chunk"]))] = true
	}
	return done, nil
}

// Completeness is the end-of-load check (declared in payload: CheckLoad
// returns it to workflows).
type Completeness = payload.Completeness

// MaxCheckLoads bounds the loads one CheckLoads call takes: its result is
// a row per load, and its load ids travel as one parameter (about 100
// bytes an id, 100 KB at the bound), far below BigQuery's request limits.
const MaxCheckLoads = 1000

// CheckLoad counts what a load left in the warehouse: CheckLoads of one.
func (w *Warehouse) CheckLoad(ctx context.Context, loadID string) (Completeness, error) {
	all, err := w.CheckLoads(ctx, []string{loadID})
	return all[loadID], err
}

// CheckLoads counts what each load left in the warehouse (up to
// MaxCheckLoads loads a call): the ledger's counts, then, in one read of
// the loads' raw rows, those rows and the ones the fact table lacks. The
// fact table is read only in the partitions the loads' rows fall in, the
// dates their ledger rows give (each chunk's, from its manifest, as its
// rows' own): the commit's anti-join and convergence DELETE use the same
// bound (an event id lives in its event's date partition), and an
// unbounded NOT IN read every event id of the whole table after every
// load. Parameters, not a subquery, bound it: BigQuery prunes partitions
// only by constants and parameters. A raw row outside those dates is not
// found there, so it counts as missing. Ledger rows written before they
// had dates send the check to raw for them first (one more read of the
// loads' rows, as every check made before). Like the commit, it looks
// fact rows up by event_key. The span is the loads' together, so loads
// checked together should be close in time (a compaction's are). Every
// id asked for gets an entry, zero for a load that left nothing.
func (w *Warehouse) CheckLoads(ctx context.Context, loadIDs []string) (map[string]Completeness, error) {
	if len(loadIDs) > MaxCheckLoads {
		return nil, fmt.Errorf("check loads: %d loads in one call, at most MaxCheckLoads (%d)", len(loadIDs), MaxCheckLoads)
	}
	out := make(map[string]Completeness, len(loadIDs))
	for _, id := range loadIDs {
		out[id] = Completeness{}
	}
	if len(loadIDs) == 0 {
		return out, nil
	}
	what := fmt.Sprintf("check %d loads (%s..)", len(loadIDs), loadIDs[0])
	if len(loadIDs) == 1 {
		what = "check load " + loadIDs[0]
	}
	ids := bigquery.QueryParameter{Name: "load_ids", Value: loadIDs}
	rows, err := w.query(ctx, what, fmt.Sprintf(`
SELECT l.load_id, IFNULL(SUM(l.`+"`rows`"+`), 0) AS ledger_rows, IFNULL(SUM(l.quarantined), 0) AS ledger_quar,
  MIN(l.min_date) AS min_date, MAX(l.max_date) AS max_date,
  COUNTIF(l.`+"`rows`"+` > 0 AND (l.min_date IS NULL OR l.max_date IS NULL)) AS undated
FROM %s l WHERE l.load_id IN UNNEST(@load_ids) GROUP BY l.load_id`, w.ref(schemas.TableLedger)), ids)
	if err != nil {
		return nil, err
	}
	var span dateRange
	dated := true
	for _, r := range rows {
		id, _ := r["load_id"].(string)
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("%s: a result row for load %q, not asked for", what, id)
		}
		out[id] = Completeness{LedgerRows: asInt(r["ledger_rows"]), LedgerQuar: asInt(r["ledger_quar"])}
		if asInt(r["undated"]) > 0 {
			dated = false
		}
		if err := span.add(r["min_date"], r["max_date"]); err != nil {
			return nil, fmt.Errorf("%s: event dates of %s's ledger rows: %w", what, id, err)
		}
	}
	if !dated || span.lo.IsZero() {
		// Dates the ledger does not have, or no ledger rows: raw's own.
		// Without raw rows there is nothing to count.
		if span, err = w.rawDates(ctx, what, ids); err != nil || span.lo.IsZero() {
			return out, err
		}
	}
	counted, err := w.query(ctx, what, fmt.Sprintf(`
SELECT r.load_id, COUNT(*) AS raw_rows,
  COUNTIF(%[2]s NOT IN (%[3]s)) AS missing
FROM %[1]s r WHERE r.load_id IN UNNEST(@load_ids)
GROUP BY r.load_id`,
		w.ref(schemas.TableRaw), eventKeySQL("r.event_id"), factKeysSQL(w.ref(schemas.TableFact), "@min_date", "@max_date")),
		ids, bigquery.QueryParameter{Name: "min_date", Value: span.lo}, bigquery.QueryParameter{Name: "max_date", Value: span.hi})
	if err != nil {
		return nil, err
	}
	for _, r := range counted {
		id, _ := r["load_id"].(string)
		c, ok := out[id]
		if !ok {
			return nil, fmt.Errorf("%s: a result row for load %q, not asked for", what, id)
		}
		c.RawRows, c.MissingInFact = asInt(r["raw_rows"]), asInt(r["missing"])
		out[id] = c
	}
	return out, nil
}

// rawDates is the span of the event dates of the loads' raw rows (zero
// when they have none).
func (w *Warehouse) rawDates(ctx context.Context, what string, ids bigquery.QueryParameter) (dateRange, error) {
	rows, err := w.query(ctx, what, fmt.Sprintf(`SELECT MIN(r.event_date) AS min_date, MAX(r.event_date) AS max_date
FROM %s r WHERE r.load_id IN UNNEST(@load_ids)`, w.ref(schemas.TableRaw)), ids)
	if err != nil {
		return dateRange{}, err
	}
	var span dateRange
	if len(rows) != 1 {
		return span, fmt.Errorf("%s: event dates of raw rows: %d result rows", what, len(rows))
	}
	if err := span.add(rows[0]["min_date"], rows[0]["max_date"]); err != nil {
		return span, fmt.Errorf("%s: event dates of raw rows: %w", what, err)
	}
	return span, nil
}

// dateRange is a span of dates, widened by each (min, max) pair a query
// returned; a pair of NULLs leaves it as it is.
type dateRange struct{ lo, hi civil.Date }

func (d *dateRange) add(lo, hi bigquery.Value) error {
	if lo == nil && hi == nil {
		return nil
	}
	l, ok1 := lo.(civil.Date)
	h, ok2 := hi.(civil.Date)
	if !ok1 || !ok2 {
		return fmt.Errorf("got %T and %T", lo, hi)
	}
	if d.lo.IsZero() || l.Before(d.lo) {
		d.lo = l
	}
	if d.hi.IsZero() || h.After(d.hi) {
		d.hi = h
	}
	return nil
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
