// Package warehouse loads staged chunks into BigQuery and keeps the star
// schema: idempotent chunk loads, dedup into the fact table, quarantine,
// dimensions, checkpoints and the report views. The same code runs
// against BigQuery and the BigQuery emulator; only the endpoint differs.
package warehouse

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// Warehouse is one dataset of ktpipe tables.
type Warehouse struct {
	bq       *bigquery.Client
	ds       *bigquery.Dataset
	project  string
	dataset  string
	location string
	// liveWindow is the live view's window (zero: DefaultLiveWindow).
	liveWindow time.Duration
	// usageFoldRows bounds fact_usage's rows since its last fold (zero:
	// DefaultUsageFoldRows).
	usageFoldRows atomic.Int64
	// maxDimUsers bounds dim_user (zero: MaxDimUsers); tests lower it.
	maxDimUsers int
	onDDL       func(what string)               // tests count changes to views
	onCommit    func() error                    // tests land a commit beside a set's, or fail, before its look
	observe     atomic.Pointer[func(Statement)] // the cost model counts jobs (SetStatementObserver)
}

// Statement is one BigQuery job the warehouse layer starts: a query or
// script (SQL), or a load job into the table Load; or a streaming insert
// into the table Stream, which is not a job.
type Statement struct {
	What   string
	SQL    string // empty for a load job or a streaming insert
	Load   string // the table a load job writes; empty for a query
	Stream string // the table a streaming insert (insertAll) writes
	// JobTimeout is the query job's timeout on BigQuery (0: none).
	JobTimeout time.Duration
}

// SetStatementObserver makes the warehouse call f with every job it
// starts, just before starting it; nil removes it. It changes nothing
// else: the cost model (ktbench -model) counts ktpipe's own statements
// with it. f may be called from several goroutines at once, and set
// while statements run (a worker's gauges query from its start).
func (w *Warehouse) SetStatementObserver(f func(Statement)) {
	if f == nil {
		w.observe.Store(nil)
		return
	}
	w.observe.Store(&f)
}

func (w *Warehouse) observed(st Statement) {
	if f := w.observe.Load(); f != nil {
		(*f)(st)
	}
}

var (
	projectPattern = regexp.MustCompile(`^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	// identPattern is a dataset or table name; BigQuery also caps them at
	// 1,024 characters, which identOK checks.
	identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidateProject checks a BigQuery project id.
func ValidateProject(p string) error {
	if !projectPattern.MatchString(p) {
		return fmt.Errorf("project %q: must be 6-30 lowercase letters, digits or dashes, starting with a letter", p)
	}
	return nil
}

// ValidateDataset checks a dataset name, since it is spliced into SQL as
// an identifier (values always travel as query parameters).
func ValidateDataset(d string) error {
	if !identOK(d) {
		return fmt.Errorf("dataset %q: must be letters, digits and underscores, not starting with a digit", d)
	}
	return nil
}

func identOK(s string) bool { return len(s) <= 1024 && identPattern.MatchString(s) }

// New returns a Warehouse for project.dataset after validating both names.
func New(bq *bigquery.Client, project, dataset, location string) (*Warehouse, error) {
	if err := ValidateProject(project); err != nil {
		return nil, err
	}
	if err := ValidateDataset(dataset); err != nil {
		return nil, err
	}
	return &Warehouse{bq: bq, ds: bq.DatasetInProject(project, dataset), project: project, dataset: dataset, location: location}, nil
}

// ref returns the quoted reference of one of our tables. Table names are
// ours or derived from validated load ids; ref still checks them.
func (w *Warehouse) ref(table string) string {
	if !identOK(table) {
		panic(fmt.Sprintf("warehouse: invalid table name %q", table)) // a programming error, never input
	}
	return "`" + w.project + "." + w.dataset + "." + table + "`"
}

func isNotFound(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == http.StatusNotFound
}

// tableNotFound says a query failed because a table it reads is missing:
// BigQuery answers 404, the emulator 400 "Table not found".
func tableNotFound(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && (ge.Code == http.StatusNotFound || (ge.Code == http.StatusBadRequest && strings.Contains(ge.Error(), "Table not found")))
}

func isConflict(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == http.StatusConflict
}

var paramPattern = regexp.MustCompile(`@(\w+)`)

// inSQLOrder orders params as sql first names them. BigQuery binds them
// by name; the emulator (v0.8.1) binds some by position: given in
// another order, the audit's fact_rows was written 0.
func inSQLOrder(sql string, params []bigquery.QueryParameter) []bigquery.QueryParameter {
	first := map[string]int{}
	for i, m := range paramPattern.FindAllStringSubmatch(sql, -1) {
		if _, ok := first[m[1]]; !ok {
			first[m[1]] = i
		}
	}
	rank := func(p bigquery.QueryParameter) int {
		if i, ok := first[p.Name]; ok {
			return i
		}
		return math.MaxInt // one sql does not name: after those it does
	}
	out := slices.Clone(params)
	slices.SortStableFunc(out, func(a, b bigquery.QueryParameter) int { return cmp.Compare(rank(a), rank(b)) })
	return out
}

// newQuery is sql with its parameters, in the warehouse's location, and
// BigQuery's job timeout (0: none); the statement observer sees it as
// what.
func (w *Warehouse) newQuery(what, sql string, params []bigquery.QueryParameter, timeout time.Duration) *bigquery.Query {
	q := w.bq.Query(sql)
	q.Parameters = inSQLOrder(sql, params)
	q.Location = w.location
	q.JobTimeout = timeout
	w.observed(Statement{What: what, SQL: sql, JobTimeout: timeout})
	return q
}

// jobTimeout is the job timeout of a statement exec runs under ctx: the
// time left to ctx's deadline. A caller that stops waiting (an activity's
// timeout, a command's --timeout) would otherwise leave the job running,
// and billed, beside the one its retry starts, on the table's DML queue
// of 2 running and 20 pending. None without a deadline, nor under
// EnsureSchema (noJobTimeout). Reads take none: a job timeout takes a
// query off jobs.query, BigQuery's fast path for reads (on the local
// stack a read so inserted was retried until its deadline); a read whose
// caller gave up runs on, billed, but holds no table's DML queue. A
// commit, which a retry re-attaches to by its job id (runOnce), takes
// none either.
func jobTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok && ctx.Value(noJobTimeout{}) == nil {
		return max(time.Until(d), time.Second)
	}
	return 0
}

// noJobTimeout marks a context whose statements keep running on BigQuery
// past its deadline.
type noJobTimeout struct{}

// exec runs one statement or script with named parameters and waits.
func (w *Warehouse) exec(ctx context.Context, what, sql string, params ...bigquery.QueryParameter) error {
	q := w.newQuery(what, sql, params, jobTimeout(ctx))
	job, err := q.Run(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	st, err := job.Wait(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := st.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// query runs sql and returns all rows as maps (for small results).
func (w *Warehouse) query(ctx context.Context, what, sql string, params ...bigquery.QueryParameter) ([]map[string]bigquery.Value, error) {
	it, err := w.newQuery(what, sql, params, 0).Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var rows []map[string]bigquery.Value
	for {
		row := map[string]bigquery.Value{}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		rows = append(rows, row)
	}
}

// maxJobIDs bounds the successor job ids one unit of work may use.
const maxJobIDs = 50

// runOnce runs one unit of work as a BigQuery job under deterministic ids,
// so that a retried activity re-attaches to the job its predecessor
// started instead of racing it: BigQuery jobs outlive the worker that
// started them. Job id n+1 is used only after job n has ended without
// taking effect; done, not the job's status, says whether it took effect.
// A job this call starts that fails is returned as an error, to the
// activity's retry policy; a failed job found from an earlier attempt is
// history, and the next id is tried.
func (w *Warehouse) runOnce(ctx context.Context, what, baseID string, start func(id string) (*bigquery.Job, error), done func() (bool, error)) error {
	baseID = boundJobID(baseID)
	var lastErr error
	for n := 0; n < maxJobIDs; n++ {
		id := baseID
		if n > 0 {
			id = fmt.Sprintf("%s_r%d", baseID, n)
		}
		job, err := w.bq.JobFromIDLocation(ctx, id, w.location)
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("%s: look up job %s: %w", what, id, err)
		}
		started := err != nil
		if started {
			job, err = start(id)
			if err != nil {
				// Another attempt may have started it a moment ago:
				// BigQuery answers 409, the emulator 400, so look.
				other, lookErr := w.bq.JobFromIDLocation(ctx, id, w.location)
				if lookErr != nil {
					return fmt.Errorf("%s: job %s: %w", what, id, err)
				}
				job, started = other, false
			}
		}
		st, err := job.Wait(ctx)
		if err != nil {
			return fmt.Errorf("%s: wait for job %s: %w", what, id, err)
		}
		if st.Err() != nil {
			lastErr = fmt.Errorf("%s: job %s: %w", what, id, st.Err())
			if started {
				return lastErr
			}
			continue
		}
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		lastErr = fmt.Errorf("%s: job %s ended without taking effect", what, id)
	}
	return fmt.Errorf("%s: %d job ids used up; last: %w", what, maxJobIDs, lastErr)
}

// maxJobID is BigQuery's bound on a job id, in bytes.
const maxJobID = 1024

// boundJobID returns id if it and its successors ("_r49") fit BigQuery's
// bound, and otherwise its start and 16 hex digits of its sha256: a long
// dataset name with a long load id (a replay of a replay of …) would
// make every job of the load fail. Ids within the bound keep their names,
// so a retry on an upgraded worker finds the job an older one started.
func boundJobID(id string) string {
	room := maxJobID - len(fmt.Sprintf("_r%d", maxJobIDs-1))
	if len(id) <= room {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return id[:room-17] + "_" + hex.EncodeToString(sum[:8])
}

// loadNDJSON replaces table's content with r's wantRows rows. A job that
// already ran under the id (a retried activity) is reused — but only if
// the table then holds exactly wantRows rows: a job whose client died
// mid-load can be recorded as done with nothing loaded, so the row count,
// not the job's existence, decides. A rerun uses WRITE_TRUNCATE, so it
// replaces, never adds.
func (w *Warehouse) loadNDJSON(ctx context.Context, table string, schema bigquery.Schema, r io.ReadSeeker, jobID string, wantRows int64) error {
	loaded := func() (bool, error) {
		n, err := w.countRows(ctx, table)
		return n == wantRows, err
	}
	start := func(id string) (*bigquery.Job, error) {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind: %w", err)
		}
		src := bigquery.NewReaderSource(r)
		src.SourceFormat = bigquery.JSON
		src.Schema = schema
		l := w.ds.Table(table).LoaderFrom(src)
		l.WriteDisposition = bigquery.WriteTruncate
		l.CreateDisposition = bigquery.CreateIfNeeded
		l.JobID = id
		l.Location = w.location
		// One request per upload: a chunk is bounded by KTPIPE_CHUNK_ROWS,
		// a broken upload is retried whole by the activity, and the
		// emulator rejects resumable uploads.
		l.MediaOptions = []googleapi.MediaOption{googleapi.ChunkSize(0)}
		w.observed(Statement{What: "load " + table, Load: table})
		return l.Run(ctx)
	}
	return w.runOnce(ctx, "load "+table, jobID, start, loaded)
}

// countRows counts a table's rows; -1 when the table does not exist.
func (w *Warehouse) countRows(ctx context.Context, table string) (int64, error) {
	if _, err := w.ds.Table(table).Metadata(ctx); isNotFound(err) {
		return -1, nil
	}
	rows, err := w.query(ctx, "count "+table, "SELECT COUNT(*) AS n FROM "+w.ref(table))
	if tableNotFound(err) {
		// Listed but gone: a drop in progress, or one a killed worker
		// left half done (the emulator then lists the table but cannot
		// read it).
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	return asInt(rows[0]["n"]), nil
}

// tableName makes a BigQuery table name from a prefix and a load id.
func tableName(prefix, loadID string, chunk int) string {
	var b strings.Builder
	b.WriteString(prefix)
	if len(loadID) > maxTableLoadID {
		// BigQuery's names end at 1,024 bytes: a longer id (a replay of a
		// replay of …) keeps its start and the sha256 of the whole.
		sum := sha256.Sum256([]byte(loadID))
		loadID = loadID[:maxTableLoadID-17] + "_" + hex.EncodeToString(sum[:8])
	}
	for _, r := range loadID {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	fmt.Fprintf(&b, "_%05d", chunk)
	return b.String()
}

// maxTableLoadID bounds the part of a table name a load id gives, so
// that with a prefix and a chunk's number it is a name BigQuery takes.
const maxTableLoadID = 960

// Dial returns a BigQuery client: an emulator when endpoint is set,
// otherwise BigQuery itself with Application Default Credentials. The
// pipeline's code is the same either way.
func Dial(ctx context.Context, project, endpoint string) (*bigquery.Client, error) {
	var opts []option.ClientOption
	if endpoint != "" {
		opts = append(opts, option.WithEndpoint(endpoint), option.WithoutAuthentication())
	}
	bq, err := bigquery.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("BigQuery client for %s: %w", project, err)
	}
	return bq, nil
}
