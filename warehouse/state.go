package warehouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
)

// Checkpoint returns the newest value stored for key, or "" when none.
func (w *Warehouse) Checkpoint(ctx context.Context, key string) (string, error) {
	rows, err := w.query(ctx, "read checkpoint "+key,
		fmt.Sprintf("SELECT value FROM %s WHERE key = @key ORDER BY updated_at DESC LIMIT 1", w.ref(schemas.TableState)),
		bigquery.QueryParameter{Name: "key", Value: key})
	if err != nil || len(rows) == 0 {
		return "", err
	}
	return rows[0]["value"].(string), nil
}

// CheckpointTime returns when the newest value for key was written, or
// the zero time when none was.
func (w *Warehouse) CheckpointTime(ctx context.Context, key string) (time.Time, error) {
	rows, err := w.query(ctx, "read checkpoint time "+key,
		fmt.Sprintf("SELECT MAX(updated_at) AS t FROM %s WHERE key = @key", w.ref(schemas.TableState)),
		bigquery.QueryParameter{Name: "key", Value: key})
	if err != nil || len(rows) == 0 || rows[0]["t"] == nil {
		return time.Time{}, err
	}
	return rows[0]["t"].(time.Time), nil
}

// SetCheckpoint appends a new value for key. Appending (not updating)
// keeps the history of checkpoints and makes a retried write harmless:
// the newest row wins.
func (w *Warehouse) SetCheckpoint(ctx context.Context, key, value string) error {
	return w.exec(ctx, "write checkpoint "+key,
		fmt.Sprintf("INSERT INTO %s (key, value, updated_at) VALUES (@key, @value, CURRENT_TIMESTAMP())", w.ref(schemas.TableState)),
		bigquery.QueryParameter{Name: "key", Value: key}, bigquery.QueryParameter{Name: "value", Value: value})
}

// CountWindow is what the warehouse holds of a window: its fact rows
// and its quarantined records (CountQuarantined), as the audit and the
// reconcile compare them with the source.
func (w *Warehouse) CountWindow(ctx context.Context, since, until time.Time) (payload.WarehouseCount, error) {
	fact, err := w.CountFact(ctx, since, until)
	if err != nil {
		return payload.WarehouseCount{}, err
	}
	q, unplaced, err := w.CountQuarantined(ctx, since, until)
	return payload.WarehouseCount{Fact: fact, Quarantined: q, Unplaced: unplaced}, err
}

// CountFact returns the fact rows with since <= event_timestamp < until.
func (w *Warehouse) CountFact(ctx context.Context, since, until time.Time) (int64, error) {
	rows, err := w.query(ctx, "count fact", fmt.Sprintf(`SELECT COUNT(*) AS n FROM %s
WHERE event_date BETWEEN @lo AND @hi AND event_timestamp >= @since AND event_timestamp < @until`, w.ref(schemas.TableFact)),
		bigquery.QueryParameter{Name: "lo", Value: civil.DateOf(since.UTC())},
		bigquery.QueryParameter{Name: "hi", Value: civil.DateOf(until.UTC())},
		bigquery.QueryParameter{Name: "since", Value: since.UTC()},
		bigquery.QueryParameter{Name: "until", Value: until.UTC()})
	if err != nil {
		return 0, err
	}
	return asInt(rows[0]["n"]), nil
}

// CountFactByWindow returns the fact rows of each window of steps, in
// one pass: a reconcile's hourly windows of a day counted one by one
// read the day's partition once each. The range spans at most
// payload.MaxCountedSpan (its dates' partitions are what is read); the
// last window ends at Until.
func (w *Warehouse) CountFactByWindow(ctx context.Context, steps payload.Steps) ([]int64, error) {
	return w.countByWindow(ctx, "count fact by window", steps, fmt.Sprintf(`SELECT DIV(TIMESTAMP_DIFF(event_timestamp, @since, MICROSECOND), @step_us) AS w, COUNT(*) AS n
FROM %s WHERE event_date BETWEEN @lo AND @hi AND event_timestamp >= @since AND event_timestamp < @until
GROUP BY w`, w.ref(schemas.TableFact)))
}

// CountQuarantinedByWindow is CountQuarantined's in-window count for
// each window of steps, in one pass (the bounds of CountFactByWindow):
// records quarantined at most the dedup window before Since whose event
// the fact table does not hold.
func (w *Warehouse) CountQuarantinedByWindow(ctx context.Context, steps payload.Steps) ([]int64, error) {
	return w.countByWindow(ctx, "count quarantine by window", steps, fmt.Sprintf(`SELECT DIV(TIMESTAMP_DIFF(q.event_timestamp, @since, MICROSECOND), @step_us) AS w, COUNT(*) AS n
FROM %s q WHERE q.quarantined_at >= @quarantine_since AND q.event_timestamp >= @since AND q.event_timestamp < @until AND %s
GROUP BY w`, w.ref(schemas.TableQuarantine), notInFactSQL("q.event_id", w.ref(schemas.TableFact))),
		bigquery.QueryParameter{Name: "quarantine_since", Value: steps.Since.UTC().Add(-quarantineDedupWindow)})
}

// countByWindow runs sql, which groups rows by window index w, over
// steps: @since, @until, @step_us and the dates @lo and @hi are given,
// and extra besides.
func (w *Warehouse) countByWindow(ctx context.Context, what string, steps payload.Steps, sql string, extra ...bigquery.QueryParameter) ([]int64, error) {
	if err := payload.CheckCountSteps(steps); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	since, until := steps.Since.UTC(), steps.Until.UTC()
	rows, err := w.query(ctx, what, sql, append([]bigquery.QueryParameter{
		{Name: "since", Value: since},
		{Name: "step_us", Value: steps.Step.Microseconds()},
		{Name: "lo", Value: civil.DateOf(since)},
		// The date of the last instant before until: a range ending at
		// midnight reads no partition of the next day.
		{Name: "hi", Value: civil.DateOf(until.Add(-time.Microsecond))},
		{Name: "until", Value: until}}, extra...)...)
	if err != nil {
		return nil, err
	}
	counts := make([]int64, (until.Sub(since)+steps.Step-1)/steps.Step)
	for _, r := range rows {
		i := asInt(r["w"])
		if i < 0 || i >= int64(len(counts)) {
			return nil, fmt.Errorf("%s: window %d of %d", what, i, len(counts))
		}
		counts[i] = asInt(r["n"])
	}
	return counts, nil
}

// CountHours counts what the warehouse holds of each of n hours from
// since, as CountWindow counts a window (fact, and quarantine not in
// fact), but with the quarantine's dedup bound from since for every
// hour: a record claiming a time more than 30 days ahead of its arrival
// may count in a later hour where that hour's own count would leave it
// out. Two grouped queries, which read what one window's count reads of
// the same dates.
func (w *Warehouse) CountHours(ctx context.Context, since time.Time, n int) (payload.HourCounts, error) {
	steps := payload.Steps{Since: since.UTC(), Until: since.UTC().Add(time.Duration(n) * time.Hour), Step: time.Hour}
	fact, err := w.CountFactByWindow(ctx, steps)
	if err != nil {
		return payload.HourCounts{}, err
	}
	q, err := w.CountQuarantinedByWindow(ctx, steps)
	if err != nil {
		return payload.HourCounts{}, err
	}
	for i := range fact {
		fact[i] += q[i]
	}
	return payload.HourCounts{Since: steps.Since, Counts: fact}, nil
}

// FactIDs returns every event id in the fact table with how often it
// occurs. It reads the whole table into memory: for the chaos soak,
// ktbench and tests on small datasets, never for a worker.
func (w *Warehouse) FactIDs(ctx context.Context) (map[string]int, error) {
	rows, err := w.query(ctx, "read fact ids", fmt.Sprintf("SELECT event_id, COUNT(*) AS n FROM %s GROUP BY event_id", w.ref(schemas.TableFact)))
	if err != nil {
		return nil, err
	}
	ids := make(map[string]int, len(rows))
	for _, r := range rows {
		ids[r["event_id"].(string)] = int(asInt(r["n"]))
	}
	return ids, nil
}

// QuarantinedIDs returns the quarantine's event ids with their field and
// rule (records without an id are keyed by their hash).
func (w *Warehouse) QuarantinedIDs(ctx context.Context) (map[string][]string, error) {
	rows, err := w.query(ctx, "read quarantine", fmt.Sprintf("SELECT IFNULL(event_id, record_hash) AS k, field, rule FROM %s", w.ref(schemas.TableQuarantine)))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, r := range rows {
		k := r["k"].(string)
		out[k] = append(out[k], r["field"].(string)+": "+r["rule"].(string))
	}
	return out, nil
}

func dateParam(s string) (civil.Date, error) {
	d, err := civil.ParseDate(s)
	if err != nil {
		return civil.Date{}, fmt.Errorf("chunk date %q: %w", s, err)
	}
	return d, nil
}

func contentHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// CountQuarantined returns quarantined records whose own timestamp lies
// in [since, until), and all quarantined records with no usable
// timestamp (those cannot be placed in any window). A record whose event
// id the fact table holds (promoted by a quarantine replay, or sent valid
// since; looked up by event_key, as commits do) is resolved and not
// counted, so fact + quarantine stays the source's count.
//
// Both count only records quarantined at most quarantineDedupWindow
// before since. A record counts in the hour of its own timestamp, and
// the quarantine is partitioned by when it was quarantined: without a
// bound, every audit (every 5 minutes) and every reconcile window read
// every quarantined record's timestamp and id ever, a cost that grew
// with the history (README, "What operating it reads"). A record arrives
// after its event, so it is quarantined after its hour begins, unless
// its timestamp claims a time ahead of its arrival: one that claims more
// than the window ahead (30 days, as far back as the quarantine is
// deduplicated) is not counted in its hour, and one with no timestamp
// quarantined that long before the window cannot be in it.
func (w *Warehouse) CountQuarantined(ctx context.Context, since, until time.Time) (inWindow, unplaced int64, err error) {
	rows, err := w.query(ctx, "count quarantine", fmt.Sprintf(`SELECT
  (SELECT COUNT(*) FROM %[1]s q WHERE q.quarantined_at >= @quarantine_since AND q.event_timestamp >= @since AND q.event_timestamp < @until
     AND %[2]s) AS in_window,
  (SELECT COUNT(*) FROM %[1]s u WHERE u.quarantined_at >= @quarantine_since AND u.event_timestamp IS NULL) AS unplaced`,
		w.ref(schemas.TableQuarantine), notInFactSQL("q.event_id", w.ref(schemas.TableFact))),
		bigquery.QueryParameter{Name: "quarantine_since", Value: since.UTC().Add(-quarantineDedupWindow)},
		bigquery.QueryParameter{Name: "since", Value: since.UTC()},
		bigquery.QueryParameter{Name: "until", Value: until.UTC()},
		bigquery.QueryParameter{Name: "lo", Value: civil.DateOf(since.UTC())},
		bigquery.QueryParameter{Name: "hi", Value: civil.DateOf(until.UTC())})
	if err != nil {
		return 0, 0, err
	}
	return asInt(rows[0]["in_window"]), asInt(rows[0]["unplaced"]), nil
}

// LiveIDs returns the event ids of the live view (fact_ai_event_live),
// each with the committed flag of each of its rows: a test reads it.
func (w *Warehouse) LiveIDs(ctx context.Context) (map[string][]bool, error) {
	rows, err := w.query(ctx, "read live ids", fmt.Sprintf("SELECT event_id, committed FROM %s", w.ref(LiveView)))
	if err != nil {
		return nil, err
	}
	ids := make(map[string][]bool, len(rows))
	for _, r := range rows {
		id := r["event_id"].(string)
		ids[id] = append(ids[id], r["committed"].(bool))
	}
	return ids, nil
}

// LandedSince returns the ids of events streamed into live_events or
// committed to the fact table at or after since: the rows the live view
// is made of, without its anti-join, which the emulator (no index, one
// query at a time) runs in time that grows with both tables. The
// freshness benchmark polls it.
func (w *Warehouse) LandedSince(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := w.query(ctx, "read landed ids", fmt.Sprintf(
		"SELECT event_id FROM %s WHERE ingested_at >= @since UNION DISTINCT SELECT event_id FROM %s WHERE ingested_at >= @since",
		w.ref(schemas.TableLive), w.ref(schemas.TableFact)), bigquery.QueryParameter{Name: "since", Value: since})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		if id, ok := r["event_id"].(string); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
