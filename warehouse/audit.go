package warehouse

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
)

// AuditRow is declared in payload: the audit workflow carries it.
type AuditRow = payload.AuditRow

// AuditScope is declared in payload: the audit workflow carries it.
type AuditScope = payload.AuditScope

// AuditMeasures is declared in payload: the audit workflow carries it.
type AuditMeasures = payload.AuditMeasures

// newerEvent raises m.WarehouseNewest to the newest event_timestamp of
// table's rows where filter holds (its partition bound).
func (w *Warehouse) newerEvent(ctx context.Context, m *AuditMeasures, what, table, filter string, param bigquery.QueryParameter) error {
	rows, err := w.query(ctx, what, fmt.Sprintf("SELECT MAX(event_timestamp) AS newest\nFROM %s WHERE %s", w.ref(table), filter), param)
	if err != nil {
		return err
	}
	if t, ok := rows[0]["newest"].(time.Time); ok && t.After(m.WarehouseNewest) {
		m.WarehouseNewest = t
	}
	return nil
}

// MeasureAudit measures the warehouse for an audit: the counts of what
// is committed (auditCounts) and the interval's measures.
func (w *Warehouse) MeasureAudit(ctx context.Context, in payload.AuditWarehouseInput) (payload.AuditWarehouseResult, error) {
	res, prev, err := w.auditCounts(ctx, in)
	if err != nil {
		return payload.AuditWarehouseResult{}, err
	}
	// With the compaction on (SetLiveWindow set its window), loads wait
	// hours for their commit and an event in the live view is what is
	// queryable: the lag is against it. Without it, the lag stays the
	// fact table's, so a stalled commit still shows.
	if w.liveWindow > 0 {
		// To the microsecond, as the audit table keeps it: the next audit
		// compares what it reads back.
		if res.LiveCount, err = w.MeasureLive(ctx, prev.LiveCount, time.Now().UTC().Truncate(time.Microsecond)); err != nil {
			return payload.AuditWarehouseResult{}, err
		}
		if res.LiveNewest.After(res.WarehouseNewest) {
			res.WarehouseNewest = res.LiveNewest
		}
	}
	if in.Scope.IntervalStart, err = w.intervalStart(ctx, in.Scope); err != nil {
		return payload.AuditWarehouseResult{}, err
	}
	res.IntervalStart = in.Scope.IntervalStart
	if err := w.MeasureInterval(ctx, in.Scope, &res.AuditMeasures); err != nil {
		return payload.AuditWarehouseResult{}, err
	}
	return res, nil
}

// intervalReach bounds how far back an audit's interval reaches for the
// end of the audit before it (intervalStart): after an outage of the
// audits longer than this, the loads committed before it are not
// measured.
const intervalReach = 48 * time.Hour

// intervalStart is where an audit's interval starts: where the audit
// before it ended, when that is earlier than s.IntervalStart. The
// schedule skips an audit while the one before still runs, and an audit
// fails while the API is down: without this, the loads committed in
// such an interval were never measured, and the guide's alert is on
// any schema violation. Never later than s.IntervalStart, so an audit
// run by hand just before (whose row the gauges may never read) does
// not narrow the next one; two audits that overlap count their common
// loads twice, which the alert, on any, does not mind.
func (w *Warehouse) intervalStart(ctx context.Context, s AuditScope) (time.Time, error) {
	rows, err := w.query(ctx, "audit interval start", fmt.Sprintf(`SELECT MAX(interval_end) AS prev
FROM %s WHERE audited_at >= @lookback AND audited_at < @end`, w.ref(schemas.TableAudit)),
		bigquery.QueryParameter{Name: "lookback", Value: s.IntervalEnd.UTC().Add(-intervalReach)},
		bigquery.QueryParameter{Name: "end", Value: s.IntervalEnd.UTC()})
	if err != nil {
		return time.Time{}, err
	}
	if prev := asTime(rows[0]["prev"]); !prev.IsZero() && prev.Before(s.IntervalStart) {
		return prev.UTC(), nil
	}
	return s.IntervalStart, nil
}

// LiveLate bounds how long after its ingested_at a live row may first
// show in live_events, as the auditing worker's clock tells it:
// InsertLive stamps each request's rows as it sends them, a request
// lives within its landing's activity timeout (payload.MaxLiveLanding),
// and the streaming buffer shows a row seconds after the call; the 5
// minutes beyond are also what the clocks of the landing's and the
// audit's workers may differ by. An audit that reads only the rows
// ingested since the last whole read reads from this much before it.
const LiveLate = payload.MaxLiveLanding + 5*time.Minute

// MeasureLive finds the live view's newest event at now: the newest
// event_timestamp of the live_events rows ingested within the view's
// window (hour partitions). prev is the count the audit before knew.
// Read whole, the window is 5 hours of rows with the compaction every 4,
// and every audit read it (README, "What operating it reads"); so an
// audit reads it whole once an hour, and in between only the rows
// ingested since that read (less LiveLate, for rows streamed late) and
// carries prev's newest while a row with it is in the window. A row that
// shows later than LiveLate after its stamp shows at the next whole
// read.
func (w *Warehouse) MeasureLive(ctx context.Context, prev payload.LiveCount, now time.Time) (payload.LiveCount, error) {
	start := now.Add(-w.liveWindow)
	whole := prev.LiveCountedAt.IsZero() || now.Sub(prev.LiveCountedAt) >= time.Hour || now.Before(prev.LiveCountedAt) ||
		!prev.LiveNewest.IsZero() && prev.LiveNewestIngested.Before(start) // its rows left the window: the newest falls
	from := start
	if !whole && prev.LiveCountedAt.Add(-LiveLate).After(from) {
		from = prev.LiveCountedAt.Add(-LiveLate)
	}
	rows, err := w.query(ctx, "audit live", fmt.Sprintf(`SELECT event_timestamp AS newest, MAX(ingested_at) AS ingested
FROM %s WHERE ingested_at >= @live_since
GROUP BY event_timestamp ORDER BY event_timestamp DESC LIMIT 1`, w.ref(schemas.TableLive)),
		bigquery.QueryParameter{Name: "live_since", Value: from})
	if err != nil {
		return payload.LiveCount{}, err
	}
	var got payload.LiveCount
	if len(rows) > 0 {
		got.LiveNewest, got.LiveNewestIngested = asTime(rows[0]["newest"]), asTime(rows[0]["ingested"])
	}
	if whole {
		got.LiveCountedAt = now
		return got, nil
	}
	got.LiveCountedAt = prev.LiveCountedAt
	switch {
	case prev.LiveNewest.After(got.LiveNewest):
		got.LiveNewest, got.LiveNewestIngested = prev.LiveNewest, prev.LiveNewestIngested
	case prev.LiveNewest.Equal(got.LiveNewest) && prev.LiveNewestIngested.After(got.LiveNewestIngested):
		got.LiveNewestIngested = prev.LiveNewestIngested
	}
	return got, nil
}

// auditCounts takes the audit's counts of what is committed, or carries
// them from the day's audit with the newest counts (latestCount) when
// commit_log has had no row since and that audit counted the same days:
// the fact's newest event, rows and duplicates over the audited days,
// and the count of each hour (fact + quarantine) for a day from the
// completeness hours' start, which the hours' count sums. The counts
// read days of partitions, and taken every 5 minutes they were most of
// what operating ktpipe reads (README, "What operating it reads"); they
// change only with a commit, so they are taken by the day's first audit
// and the first after each commit (and when the hours move past the day
// counted). A write that bypasses the commits shows then, or at once in
// an audit that recounts.
func (w *Warehouse) auditCounts(ctx context.Context, in payload.AuditWarehouseInput) (res payload.AuditWarehouseResult, prev AuditRow, err error) {
	since := in.Scope.Since.UTC()
	// Read before the counts: a commit that lands after it changes the
	// number the next audit reads, so that audit counts again.
	commits, err := w.CountCommits(ctx, since)
	if err != nil {
		return res, prev, err
	}
	res = payload.AuditWarehouseResult{CountedAt: in.Scope.IntervalEnd.UTC(), CountedSince: since, CountedCommits: commits}
	if !in.Recount {
		if prev, err = w.latestCount(ctx, in.Scope.IntervalEnd.UTC().Truncate(24*time.Hour)); err != nil {
			return res, prev, err
		}
	}
	days, hours := carries(prev, in, commits)
	if days {
		res.AuditMeasures = AuditMeasures{WarehouseNewest: prev.CountedNewest, FactRows: prev.FactRows, FactDuplicateRows: prev.FactDuplicateRows}
		res.CountedAt, res.CountedNewest = prev.CountedAt, prev.CountedNewest
	} else {
		if res.AuditMeasures, err = w.MeasureFact(ctx, since); err != nil {
			return res, prev, err
		}
		res.CountedNewest = res.WarehouseNewest // before the live view raises it
	}
	res.CountedHours = prev.CountedHours
	if !hours {
		res.CountedHours = payload.HourCounts{}
		// Hours not in whole hours, or more than a day of them, are
		// counted as a window, as before.
		if _, fits := (payload.HourCounts{Since: in.Completeness.Since, Counts: make([]int64, hoursAhead)}).Sum(in.Completeness); fits {
			if res.CountedHours, err = w.CountHours(ctx, in.Completeness.Since, hoursAhead); err != nil {
				return res, prev, err
			}
		}
	}
	n, ok := res.CountedHours.Sum(in.Completeness)
	if !ok {
		c, err := w.CountWindow(ctx, in.Completeness.Since, in.Completeness.Until)
		if err != nil {
			return res, prev, err
		}
		res.CountedHours, n = payload.HourCounts{}, c.Fact+c.Quarantined
	}
	res.CompletenessCount = n
	return res, prev, nil
}

// hoursAhead is how many hours from the completeness hours' start an
// audit counts: a day, what a query may count by hour
// (payload.MaxCountedSpan), which the hours take 21 hours to move past.
const hoursAhead = int(payload.MaxCountedSpan / time.Hour)

// carries says which of prev's counts an audit may take. The days'
// (fact's newest, rows and duplicates) when prev counted (a row of the
// version before does not say so) and found an event (an empty
// warehouse costs nothing to count, and a zero newest carried would read
// as a month's lag), over the same days, with as many commit_log rows as
// there are now; the hours' counts when, besides, they hold each of the
// completeness hours. Only prev's newest of fact and quarantine is
// carried: the live view's falls when a stalled compaction lets its rows
// age out of the view's window, so every audit measures it
// (MeasureLive).
func carries(prev AuditRow, in payload.AuditWarehouseInput, commits int64) (days, hours bool) {
	days = !prev.CountedAt.IsZero() && !prev.CountedNewest.IsZero() && prev.CountedSince.Equal(in.Scope.Since) && prev.CountedCommits == commits
	_, covered := prev.CountedHours.Sum(in.Completeness)
	return days, days && covered
}

// CountCommits counts the commit_log rows logged since since (its
// partitions from since's date): every commit writes one in its
// transaction, and so does every removal of doubled rows (removeDoubled),
// so while the count stays the same no commit or removal has changed
// fact_ai_event or quarantine.
func (w *Warehouse) CountCommits(ctx context.Context, since time.Time) (int64, error) {
	rows, err := w.query(ctx, "count commits", fmt.Sprintf("SELECT COUNT(*) AS n FROM %s WHERE logged_at >= @since", w.ref(schemas.TableCommits)),
		bigquery.QueryParameter{Name: "since", Value: since.UTC()})
	if err != nil {
		return 0, err
	}
	n, err := strictInt(rows[0]["n"])
	if err != nil {
		return 0, fmt.Errorf("count commits: %w", err)
	}
	return n, nil
}

// MeasureFact runs the audit's counts of what is committed, the fact and
// quarantine partitions from since's date: the newest event, and the
// fact's rows and duplicates. They change only with a commit, so an
// audit may carry them (see auditCounts).
func (w *Warehouse) MeasureFact(ctx context.Context, since time.Time) (AuditMeasures, error) {
	var m AuditMeasures
	from := bigquery.QueryParameter{Name: "from", Value: civil.DateOf(since.UTC())}
	fromTS := bigquery.QueryParameter{Name: "from_ts", Value: since.UTC()}
	// Events by key, as commits tell them apart (18 bytes a row read, not
	// event_id's 38). A row without a key, which no commit writes (one
	// written outside ktpipe, or by a worker before the key), sends the
	// count to event_id, so that a copy of a row is seen whoever made it.
	fact := w.ref(schemas.TableFact)
	rows, err := w.query(ctx, "audit fact", fmt.Sprintf(`SELECT MAX(event_timestamp) AS newest, COUNT(*) AS n,
  COUNT(DISTINCT event_key) AS ids, COUNTIF(event_key IS NULL) AS unkeyed
FROM %s WHERE event_date >= @from`, fact), from)
	if err != nil {
		return m, err
	}
	if t, ok := rows[0]["newest"].(time.Time); ok {
		m.WarehouseNewest = t
	}
	m.FactRows = asInt(rows[0]["n"])
	ids := asInt(rows[0]["ids"])
	if asInt(rows[0]["unkeyed"]) > 0 {
		// Rows and ids from one snapshot: a commit between the two
		// queries must not count as fewer duplicates.
		if rows, err = w.query(ctx, "audit fact by id", fmt.Sprintf("SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM %s WHERE event_date >= @from", fact), from); err != nil {
			return m, err
		}
		m.FactRows, ids = asInt(rows[0]["n"]), asInt(rows[0]["ids"])
	}
	m.FactDuplicateRows = m.FactRows - ids
	// quarantined_at is the load's clock, at or after the record arrived:
	// a record quarantined since Since is in these partitions.
	err = w.newerEvent(ctx, &m, "audit quarantine", schemas.TableQuarantine, "quarantined_at >= @from_ts", fromTS)
	return m, err
}

// MeasureInterval adds to m what every audit measures afresh: the
// records, resends and schema violations of the loads committed in the
// interval.
func (w *Warehouse) MeasureInterval(ctx context.Context, s AuditScope, m *AuditMeasures) error {
	from := bigquery.QueryParameter{Name: "from", Value: civil.DateOf(s.Since.UTC())}
	start := bigquery.QueryParameter{Name: "start", Value: s.IntervalStart.UTC()}
	end := bigquery.QueryParameter{Name: "end", Value: s.IntervalEnd.UTC()}
	// What was written in the interval is what loads committed in it (the
	// ledger's commit time; a load's own clock is when it read the
	// source, which can be long before a slow commit). Each ledger row
	// says how many of its chunk's rows were new to fact: the rest fact
	// already held, records the source sent again. The ledger alone, a
	// row a chunk: a read of raw_events' ids for two days every audit
	// was the largest of its costs (README, "What operating it reads").
	rows, err := w.query(ctx, "audit interval", fmt.Sprintf(`SELECT IFNULL(SUM(l.`+"`rows`"+`), 0) AS n,
  IFNULL(SUM(l.`+"`rows`"+` - l.added), 0) AS resends, IFNULL(SUM(l.quarantined), 0) AS violations,
  COUNTIF(l.added IS NULL) AS uncounted
FROM %s l WHERE l.committed_at >= @start AND l.committed_at < @end`, w.ref(schemas.TableLedger)), start, end)
	if err != nil {
		return err
	}
	if asInt(rows[0]["uncounted"]) > 0 {
		// Rows written before the ledger counted them (a worker of the
		// version before, in the interval of an upgrade): from raw.
		if rows, err = w.intervalFromRaw(ctx, from, start, end); err != nil {
			return err
		}
	}
	m.SchemaViolations = asInt(rows[0]["violations"])
	m.SourceRecords = asInt(rows[0]["n"]) + m.SchemaViolations
	m.SourceResends = asInt(rows[0]["resends"])
	return nil
}

// intervalFromRaw is the audit interval's records and resends from raw:
// raw_events keeps each load's rows, one per id and load, all stamped with
// the load's ingested_at, so an id's rows in the interval's loads beyond
// its first load are records the source sent again. One grouped pass over
// raw_events, joined only to the interval's few load ids: a join of
// raw_events with its own per-id minimum is a scan per row on the
// emulator, which took minutes at 6,000 events.
func (w *Warehouse) intervalFromRaw(ctx context.Context, from, start, end bigquery.QueryParameter) ([]map[string]bigquery.Value, error) {
	return w.query(ctx, "audit interval from raw", fmt.Sprintf(`WITH loads AS (
  SELECT load_id, quarantined FROM %[1]s WHERE committed_at >= @start AND committed_at < @end
), interval_loads AS (
  SELECT DISTINCT load_id FROM loads
), per_id AS (
  SELECT COUNTIF(l.load_id IS NOT NULL) AS mine,
    MIN(r.ingested_at) AS first_at,
    MIN(IF(l.load_id IS NOT NULL, r.ingested_at, NULL)) AS mine_first
  FROM %[2]s r LEFT JOIN interval_loads l ON l.load_id = r.load_id
  WHERE r.event_date >= @from
  GROUP BY r.event_id
)
SELECT IFNULL(SUM(mine), 0) AS n,
  IFNULL(SUM(mine - IF(mine > 0 AND mine_first = first_at, 1, 0)), 0) AS resends,
  (SELECT IFNULL(SUM(quarantined), 0) FROM loads) AS violations
FROM per_id`, w.ref(schemas.TableLedger), w.ref(schemas.TableRaw)), from, start, end)
}

// AppendAudit writes an audit row once: a retry of the same audit (same
// audited_at, from the workflow) adds nothing. The lag is NULL when the
// API reported no event (nothing to measure it against).
func (w *Warehouse) AppendAudit(ctx context.Context, r AuditRow) error {
	var params []bigquery.QueryParameter
	var cols, vals []string
	value := func(col string, v any) {
		params = append(params, bigquery.QueryParameter{Name: col, Value: v})
		cols, vals = append(cols, col), append(vals, "@"+col)
	}
	// A value that may be NULL goes as its text, cast in the statement,
	// and NULL as the text NULL, which NULLIF makes NULL (a text a cast
	// cannot read is an error, not a NULL; "" read as 0 on the emulator):
	// no IF(@has_x, @x, NULL), with which the emulator (v0.8.1) wrote
	// api_count, warehouse_count, source_resends and others of the row
	// as 0, and no NULL parameter, which it types INT64.
	nullable := func(col, typ, text string, valid bool) {
		if !valid {
			text = "NULL"
		}
		params = append(params, bigquery.QueryParameter{Name: col, Value: text})
		cols, vals = append(cols, col), append(vals, fmt.Sprintf("CAST(NULLIF(@%s, 'NULL') AS %s)", col, typ))
	}
	ts := func(col string, t time.Time) {
		nullable(col, "TIMESTAMP", t.UTC().Format("2006-01-02 15:04:05.999999+00:00"), !t.IsZero())
	}
	value("audited_at", r.AuditedAt.UTC())
	ts("api_newest", r.APINewest)
	ts("warehouse_newest", r.WarehouseNewest)
	nullable("ingestion_lag_seconds", "FLOAT64", strconv.FormatFloat(r.IngestionLagSeconds, 'g', -1, 64), !r.APINewest.IsZero())
	value("fact_rows", r.FactRows)
	value("fact_duplicate_rows", r.FactDuplicateRows)
	value("fact_duplicate_ratio", r.FactDuplicateRatio)
	value("source_records", r.SourceRecords)
	value("source_resends", r.SourceResends)
	value("source_resend_ratio", r.SourceResendRatio)
	ts("interval_start", r.IntervalStart)
	ts("interval_end", r.IntervalEnd)
	value("schema_violations", r.SchemaViolations)
	ts("completeness_start", r.CompletenessStart)
	ts("completeness_end", r.CompletenessEnd)
	value("api_count", r.APICount)
	value("warehouse_count", r.WarehouseCount)
	value("completeness_ratio", r.CompletenessRatio)
	ts("counted_at", r.CountedAt)
	ts("counted_since", r.CountedSince)
	nullable("counted_commits", "INT64", strconv.FormatInt(r.CountedCommits, 10), !r.CountedAt.IsZero())
	ts("counted_newest", r.CountedNewest)
	ts("live_newest", r.LiveNewest)
	ts("live_newest_ingested", r.LiveNewestIngested)
	ts("live_counted_at", r.LiveCountedAt)
	hours, err := json.Marshal(r.CountedHours)
	if err != nil {
		return fmt.Errorf("append audit: the hours' counts: %w", err)
	}
	nullable("counted_hours", "STRING", string(hours), len(r.CountedHours.Counts) > 0)
	sql := fmt.Sprintf(`INSERT INTO %[1]s (%[2]s)
SELECT %[3]s
FROM (SELECT 1 AS one) AS x
WHERE NOT EXISTS (SELECT 1 FROM %[1]s a WHERE a.audited_at = @audited_at)`,
		w.ref(schemas.TableAudit), strings.Join(cols, ", "), strings.Join(vals, ", "))
	return w.exec(ctx, "append audit", sql, params...)
}

// LatestAudit returns the newest audit row written since since (zero
// AuditedAt when there is none): the partitions from since's date only.
func (w *Warehouse) LatestAudit(ctx context.Context, since time.Time) (AuditRow, error) {
	rows, err := w.AuditHistory(ctx, since, 1)
	if err != nil || len(rows) == 0 {
		return AuditRow{}, err
	}
	return rows[0], nil
}
