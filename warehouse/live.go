package warehouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
)

// The live landing: a webhook batch streams its deliveries' rows into
// live_events seconds after they arrive, and commits them to the fact
// table once its window closes (see workflows.WebhookBatch). The view
// fact_ai_event_live is the fact table plus the live rows it does not hold
// yet, one row per event id, for queries that need seconds-fresh data.
// The fact table's exactly-once guarantee does not depend on any of this:
// live rows are at least once, and the view dedups them.

// LiveView is the fact table with the webhook rows not committed yet.
const LiveView = "fact_ai_event_live"

// DefaultLiveWindow is the live view's window when SetLiveWindow is not
// called: the view adds to the fact table the live rows ingested within
// it, of events dated today or yesterday (UTC). A live row is needed only
// until its load commits (a webhook batch's, a minute or two later; a
// compaction's, every few hours: SetLiveWindow); a load that cannot
// commit for longer shows when it does, and so does a late event dated
// before yesterday. The bounds keep the view's reads to the window's
// partitions of live_events and two event_date partitions of the fact
// table's ids (see the README, "The live view").
const DefaultLiveWindow = time.Hour

// MaxLiveWindow bounds the live view's window. live_events is partitioned
// by the hour of ingested_at, and a partition is dropped
// bqschema.LiveRetention after its start: a row ingested just before an
// hour ends is kept LiveRetention − 1h. A window longer than that would
// let a row leave live_events while the view still means to show it, so
// the window may be at most LiveRetention − 1h (5 hours with today's 6):
// raise LiveRetention first to show rows longer.
const MaxLiveWindow = bqschema.LiveRetention - time.Hour

// LiveWindowFor is the live view's window with the compaction every
// compactEvery: what waits for the compaction shows in the live view
// until the next run, and the hour it may take, has committed it.
func LiveWindowFor(compactEvery time.Duration) time.Duration { return compactEvery + time.Hour }

// ValidateLiveWindow checks a live view window: at least a minute (the
// view counts it in whole minutes) and at most MaxLiveWindow.
func ValidateLiveWindow(d time.Duration) error {
	if d < time.Minute || d > MaxLiveWindow {
		return fmt.Errorf("live window %s: must be between 1m and %s (live_events keeps a row %s at least: bqschema.LiveRetention less its hourly partition)", d, MaxLiveWindow, MaxLiveWindow)
	}
	return nil
}

// SetLiveWindow sets the live view's window: how long after ingestion a
// live row shows in fact_ai_event_live while the fact table lacks it. Set
// it to more than the longest a load waits for its commit (with
// compaction, its interval plus the commit's own time), before
// EnsureSchema, which replaces the view when the window changed. d must
// pass ValidateLiveWindow (the configuration checks it): anything else
// is a programming error, and panics.
func (w *Warehouse) SetLiveWindow(d time.Duration) {
	if err := ValidateLiveWindow(d); err != nil {
		panic("warehouse: " + err.Error())
	}
	w.liveWindow = d
}

// window is the live view's window (DefaultLiveWindow unless set).
func (w *Warehouse) window() time.Duration {
	if w.liveWindow == 0 {
		return DefaultLiveWindow
	}
	return w.liveWindow
}

// liveDays is how many days before today the live side's events may be
// dated.
const liveDays = 1

// Limits of one insertAll request: BigQuery takes up to 10 MB and 50,000
// rows and recommends about 500 rows a request.
const (
	MaxLiveRows  = 500
	MaxLiveBytes = 5 << 20
)

// liveView is not a report: `ktpipe reports` does not print it. It finds
// a live row's event in the fact table by event_key, as commits do (18
// bytes a fact row read, not event_id's 38), and ranks a UUID's live
// rows in either case as one event.
var liveView = View{Name: LiveView, Title: "Fact with webhook events not committed yet", sql: `
SELECT {columns}, TRUE AS committed FROM {fact} t
UNION ALL
SELECT {columns}, FALSE AS committed FROM (
  SELECT l.*, ROW_NUMBER() OVER (PARTITION BY LOWER(l.event_id) ORDER BY l.ingested_at, l.load_id) AS live_rank
  FROM {live} l
  WHERE l.ingested_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {minutes} MINUTE)
    AND l.event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL {days} DAY)
    AND NOT EXISTS (
      SELECT 1 FROM {fact} f
      WHERE f.event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL {days} DAY)
        AND f.event_date = l.event_date AND f.event_key = {live_key})
) t WHERE t.live_rank = 1`}

// liveColumns lists the event row's columns by name (of the union's
// sides, each aliased t), so that a column an operator added to one of
// the two tables cannot misalign the union: those of them both tables
// serve, when served is not nil. On BigQuery it serves them all; the
// emulator does not serve a column added to an existing table until the
// table is rebuilt (see the README's emulator table), and a view naming
// it could not be created.
func liveColumns(served map[string]bool) string {
	var names []string
	for _, f := range bqschema.EventRowSchema() {
		if served == nil || served[f.Name] {
			names = append(names, "t."+f.Name)
		}
	}
	return strings.Join(names, ", ")
}

// servedColumns returns the columns a query of table returns (nil when the
// table does not exist yet): a query that reads no rows, free on BigQuery.
func (w *Warehouse) servedColumns(ctx context.Context, table string) (map[string]bool, error) {
	sql := "SELECT * FROM " + w.ref(table) + " LIMIT 0"
	it, err := w.newQuery("read the columns of "+table, sql, nil, 0).Read(ctx)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil && !errors.Is(err, iterator.Done) {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	cols := map[string]bool{}
	for _, f := range it.Schema {
		cols[f.Name] = true
	}
	return cols, nil
}

// InsertLive streams encoded event rows (schemas.AppendEventRow's JSON
// objects) into live_events: at most MaxLiveRows rows and MaxLiveBytes
// bytes a call. Streaming is at least once (a retried call may add the
// rows again); the live view keeps one row per event id, and nothing
// reads live_events for the fact table. Each row's ingested_at becomes
// the call's time: a pull's rows were stamped when it split them, up to
// hours before its landing streams them, and the audit reads the rows
// ingested since its last whole read counting on a row showing within
// LiveLate of its stamp (MeasureLive).
func (w *Warehouse) InsertLive(ctx context.Context, rows []json.RawMessage) error {
	return w.insertLive(ctx, rows, time.Now())
}

// insertLive is InsertLive with ingested_at set to at, or as the rows
// have it when at is zero (tests that stream rows of another time).
func (w *Warehouse) insertLive(ctx context.Context, rows []json.RawMessage, at time.Time) error {
	stamp := json.RawMessage(strconv.Quote(at.UTC().Format("2006-01-02T15:04:05.999999Z07:00")))
	if len(rows) > MaxLiveRows {
		return fmt.Errorf("insert into %s: %d rows in one call, at most %d", schemas.TableLive, len(rows), MaxLiveRows)
	}
	size := 0
	savers := make([]bigquery.ValueSaver, len(rows))
	for i, r := range rows {
		size += len(r)
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(r, &fields); err != nil {
			return fmt.Errorf("insert into %s: row %d is not a JSON object: %w", schemas.TableLive, i, err)
		}
		if !at.IsZero() {
			fields["ingested_at"] = stamp
		}
		savers[i] = liveRow(fields)
	}
	if size > MaxLiveBytes {
		return fmt.Errorf("insert into %s: %d bytes in one call, at most %d", schemas.TableLive, size, MaxLiveBytes)
	}
	w.observed(Statement{What: "stream live rows", Stream: schemas.TableLive})
	if err := w.ds.Table(schemas.TableLive).Inserter().Put(ctx, savers); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", len(rows), schemas.TableLive, err)
	}
	return nil
}

// liveRow is a row as its JSON fields: the values go to insertAll as
// written, so a timestamp or a NUMERIC keeps its exact text.
type liveRow map[string]json.RawMessage

// Save sends no insert id: BigQuery's dedup by insert id is best effort
// and short-lived, the view dedups by event id anyway, and rows without
// one get the larger streaming quota.
func (r liveRow) Save() (map[string]bigquery.Value, string, error) {
	m := make(map[string]bigquery.Value, len(r))
	for k, v := range r {
		m[k] = v
	}
	return m, bigquery.NoDedupeID, nil
}
