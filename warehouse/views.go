package warehouse

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/ktpipe/ktpipe/schemas"
)

// View is a standard report or data-quality query over the star schema.
type View struct {
	Name    string
	Title   string
	OrderBy string // how a report prints it
	sql     string // with {fact}, {dim_user}, ... placeholders
}

// Views are the seed's three reports and the data-quality queries.
var Views = []View{
	{Name: "report_daily_spend_by_team", Title: "Daily AI spend by team", OrderBy: "event_date DESC, spend_usd DESC", sql: `
SELECT f.event_date, IFNULL(u.team, 'unknown') AS team, COUNT(*) AS requests,
  SUM(f.total_tokens) AS tokens, SUM(f.cost_usd) AS spend_usd
FROM {fact} f LEFT JOIN {dim_user} u ON u.user = f.user
GROUP BY f.event_date, team`},
	{Name: "report_policy_effectiveness", Title: "Policy effectiveness", OrderBy: "triggered DESC", sql: `
WITH evaluated AS (
  SELECT p AS policy, COUNT(*) AS evaluated FROM {fact}, UNNEST(policies_evaluated) AS p GROUP BY p
), triggered AS (
  SELECT p AS policy, COUNT(*) AS triggered, COUNTIF(was_blocked) AS blocked
  FROM {fact}, UNNEST(policies_triggered) AS p GROUP BY p
)
SELECT e.policy, e.evaluated, IFNULL(t.triggered, 0) AS triggered, IFNULL(t.blocked, 0) AS blocked,
  ROUND(SAFE_DIVIDE(IFNULL(t.triggered, 0), e.evaluated), 4) AS trigger_rate
FROM evaluated e LEFT JOIN triggered t ON t.policy = e.policy`},
	{Name: "report_model_usage", Title: "Model usage distribution", OrderBy: "requests DESC", sql: `
WITH usage AS (
  SELECT provider, model, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens,
    SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS spend_usd
  FROM {fact} GROUP BY provider, model
)
SELECT u.provider, u.model, u.requests,
  ROUND(SAFE_DIVIDE(u.requests, (SELECT SUM(requests) FROM usage)), 4) AS request_share,
  u.input_tokens, u.output_tokens, u.spend_usd, m.input_cost_per_1k, m.output_cost_per_1k
FROM usage u LEFT JOIN {dim_model} m ON m.provider = u.provider AND m.model = u.model`},
	{Name: "dq_duplicate_rate", Title: "Duplicate rate on event id (fact must be 0)", sql: `
SELECT COUNT(*) AS fact_rows, COUNT(DISTINCT event_id) AS distinct_ids,
  SAFE_DIVIDE(COUNT(*) - COUNT(DISTINCT event_id), COUNT(*)) AS duplicate_rate
FROM {fact}`},
	{Name: "dq_schema_violations", Title: "Schema violations by field and rule", OrderBy: "day DESC, records DESC", sql: `
SELECT DATE(quarantined_at) AS day, field, rule, COUNT(*) AS records
FROM {quarantine} GROUP BY day, field, rule`},
	{Name: "dq_hourly_counts", Title: "Events per hour (reconciliation)", OrderBy: "event_date DESC, event_hour DESC", sql: `
SELECT event_date, event_hour, COUNT(*) AS events FROM {fact} GROUP BY event_date, event_hour`},
	{Name: "dq_ingestion_lag", Title: "Ingestion lag", sql: `
SELECT MAX(event_timestamp) AS latest_event, MAX(ingested_at) AS latest_load,
  TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), MAX(event_timestamp), SECOND) AS lag_seconds
FROM {fact}`},
}

// Reports are the seed's three standard reports.
var Reports = Views[:3]

func (w *Warehouse) viewSQL(v View) string {
	r := strings.NewReplacer(
		"{fact}", w.ref(schemas.TableFact), "{dim_user}", w.ref(schemas.TableDimUser),
		"{dim_model}", w.ref(schemas.TableDimModel), "{quarantine}", w.ref(schemas.TableQuarantine))
	return r.Replace(v.sql)
}

// ensureViews (re)creates every view. DROP then CREATE rather than CREATE
// OR REPLACE: the emulator refuses the latter, and on BigQuery the gap
// between the two statements is milliseconds, once per deploy.
func (w *Warehouse) ensureViews(ctx context.Context) ([]string, error) {
	var names []string
	for _, v := range Views {
		ref := w.ref(v.Name)
		if err := w.exec(ctx, "drop view "+v.Name, "DROP VIEW IF EXISTS "+ref); err != nil {
			return names, err
		}
		if err := w.exec(ctx, "create view "+v.Name, "CREATE VIEW "+ref+" AS "+w.viewSQL(v)); err != nil {
			return names, err
		}
		names = append(names, v.Name)
	}
	return names, nil
}

// ReportRows reads a view, ordered for printing, at most limit rows.
func (w *Warehouse) ReportRows(ctx context.Context, v View, limit int) ([]bigquery.Schema, [][]bigquery.Value, error) {
	sql := "SELECT * FROM " + w.ref(v.Name)
	if v.OrderBy != "" {
		sql += " ORDER BY " + v.OrderBy
	}
	sql += fmt.Sprintf(" LIMIT %d", limit)
	q := w.bq.Query(sql)
	q.Location = w.location
	it, err := q.Read(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", v.Name, err)
	}
	var rows [][]bigquery.Value
	for {
		var row []bigquery.Value
		if err := it.Next(&row); err != nil {
			if errors.Is(err, iterator.Done) {
				break
			}
			return nil, nil, fmt.Errorf("read %s: %w", v.Name, err)
		}
		rows = append(rows, row)
	}
	return []bigquery.Schema{it.Schema}, rows, nil
}
