package warehouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"google.golang.org/api/iterator"

	"github.com/ktpipe/ktpipe/schemas"
)

// QuarantineFilter selects quarantined records for a replay.
type QuarantineFilter struct {
	// Rule matches a record's rule ("must be a known gateway") or its
	// field and rule ("gateway_id: must be a known gateway"); "" is any.
	Rule string
	// Since and Until, when set, select records whose own timestamp lies
	// in [Since, Until): the event window, as every other command's.
	Since, Until time.Time
	// After continues a previous read: only record hashes above it.
	After string
	// Limit bounds the records one read returns.
	Limit int
}

// QuarantinedRecord is one record a replay may promote.
type QuarantinedRecord struct {
	RecordHash string
	Field      string
	Rule       string
	Raw        string
}

// ReadQuarantine streams the quarantined records that a replay may still
// promote, in record-hash order, to fn: those with an event id that the
// fact table does not hold. A record without an id cannot become a valid
// event; a record whose id is in the fact table is resolved (promoted
// before, or the source sent a valid version since). So a second replay
// selects nothing it promoted, without marking anything.
func (w *Warehouse) ReadQuarantine(ctx context.Context, f QuarantineFilter, fn func(QuarantinedRecord) error) error {
	if f.Limit <= 0 {
		return errors.New("read quarantine: limit must be positive")
	}
	windowed := !f.Since.IsZero() || !f.Until.IsZero()
	lo, hi := civil.Date{Year: 1, Month: 1, Day: 1}, civil.Date{Year: 9999, Month: 12, Day: 31}
	since, until := time.Unix(0, 0).UTC(), time.Unix(0, 0).UTC()
	if windowed {
		if !f.Since.Before(f.Until) {
			return fmt.Errorf("read quarantine: window [%s, %s) is empty", f.Since, f.Until)
		}
		since, until = f.Since.UTC(), f.Until.UTC()
		lo, hi = civil.DateOf(since), civil.DateOf(until)
	}
	// The fact table is read only in the window's partitions: a record's
	// event_date comes from its own timestamp, as the fact row's would.
	// It is looked up by event_key, as commits do: an id that is not a
	// UUID has none, and is never in the fact table.
	sql := fmt.Sprintf(`SELECT q.record_hash, q.field, q.rule, q.raw FROM %[1]s q
WHERE q.event_id IS NOT NULL AND q.record_hash > @after
  AND (@rule = '' OR q.rule = @rule OR CONCAT(q.field, ': ', q.rule) = @rule)
  AND (NOT @windowed OR (q.event_timestamp >= @since AND q.event_timestamp < @until))
  AND %[2]s
ORDER BY q.record_hash
LIMIT @limit`, w.ref(schemas.TableQuarantine), notInFactSQL("q.event_id", w.ref(schemas.TableFact)))
	q := w.newQuery("read quarantine", sql, []bigquery.QueryParameter{
		{Name: "after", Value: f.After}, {Name: "rule", Value: f.Rule}, {Name: "windowed", Value: windowed},
		{Name: "since", Value: since}, {Name: "until", Value: until}, {Name: "lo", Value: lo}, {Name: "hi", Value: hi},
		{Name: "limit", Value: int64(f.Limit)},
	}, 0)
	it, err := q.Read(ctx)
	if err != nil {
		return fmt.Errorf("read quarantine: %w", err)
	}
	for {
		var row struct {
			RecordHash string `bigquery:"record_hash"`
			Field      string `bigquery:"field"`
			Rule       string `bigquery:"rule"`
			Raw        string `bigquery:"raw"`
		}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read quarantine: %w", err)
		}
		if err := fn(QuarantinedRecord(row)); err != nil {
			return err
		}
	}
}
