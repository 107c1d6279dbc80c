package warehouse

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
)

// MaxAuditRows bounds one AuditHistory read: 12 a hour for 7 days.
const MaxAuditRows = 2016

// AuditHistory reads the audit runs since a time, newest first, at most
// limit (≤ MaxAuditRows). The filter on audited_at prunes to the days
// asked for (the table is partitioned by DATE(audited_at)).
func (w *Warehouse) AuditHistory(ctx context.Context, since time.Time, limit int) ([]AuditRow, error) {
	return w.auditRows(ctx, "read audit", "audited_at DESC", since, limit)
}

// latestCount is the audit row since since with the newest counts, the
// one an audit may carry them from: a recount whose row an audit begun
// while it counted (and carrying the counts before it) outdates by
// audited_at still wins.
func (w *Warehouse) latestCount(ctx context.Context, since time.Time) (AuditRow, error) {
	rows, err := w.auditRows(ctx, "read the newest count", "counted_at DESC, audited_at DESC", since, 1)
	if err != nil || len(rows) == 0 {
		return AuditRow{}, err
	}
	return rows[0], nil
}

// auditRows reads at most limit (≤ MaxAuditRows) audit rows since a
// time in the order given.
func (w *Warehouse) auditRows(ctx context.Context, what, order string, since time.Time, limit int) ([]AuditRow, error) {
	if limit <= 0 || limit > MaxAuditRows {
		limit = MaxAuditRows
	}
	// Every column, by name: a column a newer version added that this
	// dataset lacks yet (a CLI upgraded before the workers that migrate
	// it) reads as zero, not as an error.
	rows, err := w.query(ctx, what, fmt.Sprintf(`SELECT * FROM %s WHERE audited_at >= @since ORDER BY %s LIMIT %d`, w.ref(schemas.TableAudit), order, limit),
		bigquery.QueryParameter{Name: "since", Value: since.UTC()})
	if err != nil {
		return nil, err
	}
	out := make([]AuditRow, 0, len(rows))
	for _, r := range rows {
		a := AuditRow{AuditedAt: asTime(r["audited_at"]), APINewest: asTime(r["api_newest"]), WarehouseNewest: asTime(r["warehouse_newest"]),
			IngestionLagSeconds: asFloat(r["ingestion_lag_seconds"]), LagKnown: r["ingestion_lag_seconds"] != nil,
			FactRows: asInt(r["fact_rows"]), FactDuplicateRows: asInt(r["fact_duplicate_rows"]), FactDuplicateRatio: asFloat(r["fact_duplicate_ratio"]),
			SourceRecords: asInt(r["source_records"]), SourceResends: asInt(r["source_resends"]), SourceResendRatio: asFloat(r["source_resend_ratio"]),
			SchemaViolations: asInt(r["schema_violations"]), IntervalStart: asTime(r["interval_start"]), IntervalEnd: asTime(r["interval_end"]),
			CompletenessStart: asTime(r["completeness_start"]), CompletenessEnd: asTime(r["completeness_end"]),
			APICount: asInt(r["api_count"]), WarehouseCount: asInt(r["warehouse_count"]), CompletenessRatio: asFloat(r["completeness_ratio"]),
			CountedAt: asTime(r["counted_at"]), CountedSince: asTime(r["counted_since"]), CountedCommits: asInt(r["counted_commits"]),
			CountedNewest: asTime(r["counted_newest"]),
			LiveCount: payload.LiveCount{LiveNewest: asTime(r["live_newest"]), LiveNewestIngested: asTime(r["live_newest_ingested"]),
				LiveCountedAt: asTime(r["live_counted_at"])}}
		if s, _ := r["counted_hours"].(string); s != "" {
			// Unreadable (written by hand): the next audit counts the
			// hours again.
			var h payload.HourCounts
			if json.Unmarshal([]byte(s), &h) == nil {
				a.CountedHours = h
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// ViolationCount is how many records broke one rule of one field.
type ViolationCount struct {
	Field, Rule string
	Records     int64
}

// QuarantineSince counts the records quarantined since a time by field
// and rule, most first, at most 20 kinds (a screen's worth). The filter on
// quarantined_at prunes to the partitions asked for.
func (w *Warehouse) QuarantineSince(ctx context.Context, since time.Time) ([]ViolationCount, error) {
	rows, err := w.query(ctx, "count quarantine", fmt.Sprintf(`SELECT field, rule, COUNT(*) AS n FROM %s
WHERE quarantined_at >= @since GROUP BY field, rule ORDER BY n DESC, field, rule LIMIT 20`, w.ref(schemas.TableQuarantine)),
		bigquery.QueryParameter{Name: "since", Value: since.UTC()})
	if err != nil {
		return nil, err
	}
	out := make([]ViolationCount, 0, len(rows))
	for _, r := range rows {
		f, _ := r["field"].(string)
		ru, _ := r["rule"].(string)
		out = append(out, ViolationCount{Field: f, Rule: ru, Records: asInt(r["n"])})
	}
	return out, nil
}

func asTime(v bigquery.Value) time.Time {
	t, _ := v.(time.Time)
	return t
}

func asFloat(v bigquery.Value) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	}
	return 0
}
