package warehouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
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

// Views are the seed's three reports (as the data engineer guide defines
// them), the data-quality queries, and the spend by the user map's teams.
var Views = []View{
	// The guide's team is the gateway's (dim_gateway.team, from the API),
	// so the report needs no user map.
	{Name: "report_daily_spend_by_team", Title: "Daily AI spend by team", OrderBy: "event_date DESC, spend_usd DESC", sql: `
SELECT f.event_date, IFNULL(g.team, 'unknown') AS team, COUNT(*) AS requests,
  SUM(f.total_tokens) AS tokens, SUM(f.cost_usd) AS spend_usd
FROM {fact} f LEFT JOIN {dim_gateway} g ON g.gateway_id = f.gateway_id
GROUP BY f.event_date, team`},
	// Every policy evaluated or triggered: the contract does not make the
	// triggered a subset of the evaluated, and the guide's query counts
	// the triggered.
	{Name: "report_policy_effectiveness", Title: "Policy effectiveness", OrderBy: "triggered DESC", sql: `
WITH evaluated AS (
  SELECT p AS policy, COUNT(*) AS evaluated FROM {fact}, UNNEST(policies_evaluated) AS p GROUP BY p
), triggered AS (
  SELECT p AS policy, COUNT(*) AS triggered, COUNTIF(was_blocked) AS blocked
  FROM {fact}, UNNEST(policies_triggered) AS p GROUP BY p
)
SELECT COALESCE(e.policy, t.policy) AS policy, IFNULL(e.evaluated, 0) AS evaluated,
  IFNULL(t.triggered, 0) AS triggered, IFNULL(t.blocked, 0) AS blocked,
  ROUND(SAFE_DIVIDE(IFNULL(t.triggered, 0), e.evaluated), 4) AS trigger_rate
FROM evaluated e FULL OUTER JOIN triggered t ON t.policy = e.policy`},
	// Ordered by total cost, as the guide's query is.
	{Name: "report_model_usage", Title: "Model usage distribution", OrderBy: "spend_usd DESC, requests DESC", sql: `
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
	// The guide's lag: the API's newest event against the warehouse's,
	// as the newest audit measured it (a quiet source is not a lagging
	// pipeline, which "now minus the newest event" would say it was).
	{Name: "dq_ingestion_lag", Title: "Ingestion lag", sql: `
SELECT f.latest_event, f.latest_load, a.ingestion_lag_seconds AS lag_seconds,
  a.api_newest AS api_latest_event, a.audited_at AS measured_at
FROM (SELECT MAX(event_timestamp) AS latest_event, MAX(ingested_at) AS latest_load FROM {fact}) f
LEFT JOIN (
  SELECT audited_at, api_newest, ingestion_lag_seconds FROM {audit}
  WHERE audited_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)
  ORDER BY audited_at DESC LIMIT 1
) a ON TRUE`},
	// The team of the user map (KTPIPE_USER_MAP): another view of spend
	// beside the guide's, printed by reports only where a map is set.
	{Name: userTeamView, Title: "Daily AI spend by the user map's team", OrderBy: "event_date DESC, spend_usd DESC", sql: `
SELECT f.event_date, IFNULL(u.team, 'unknown') AS team, IFNULL(u.department, 'unknown') AS department,
  COUNT(*) AS requests, SUM(f.total_tokens) AS tokens, SUM(f.cost_usd) AS spend_usd
FROM {fact} f LEFT JOIN {dim_user} u ON u.user = f.user
GROUP BY f.event_date, team, department`},
}

const userTeamView = "report_daily_spend_by_user_team"

// Reports are the seed's three standard reports.
var Reports = Views[:3]

// allViews are the reports and the views that are not reports.
func allViews() []View { return append(Views[:len(Views):len(Views)], liveView) }

// PrintedViews are the views `ktpipe reports` prints: all of them, but
// the user map's team only when a user map is configured (without one,
// every user's team is "unknown").
func PrintedViews(userMap bool) []View {
	var out []View
	for _, v := range Views {
		if v.Name != userTeamView || userMap {
			out = append(out, v)
		}
	}
	return out
}

func (w *Warehouse) viewSQL(v View) string {
	return w.viewSQLOver(v, w.ref(schemas.TableFact), w.ref(schemas.TableQuarantine))
}

// viewSQLOver is v's query with the fact table and the quarantine read
// from fact and quarantine (tables, or the names of a WITH's queries).
func (w *Warehouse) viewSQLOver(v View, fact, quarantine string) string {
	r := strings.NewReplacer(
		"{fact}", fact, "{dim_user}", w.ref(schemas.TableDimUser),
		"{dim_gateway}", w.ref(schemas.TableDimGateway),
		"{dim_model}", w.ref(schemas.TableDimModel), "{quarantine}", quarantine,
		"{audit}", w.ref(schemas.TableAudit),
		"{live}", w.ref(schemas.TableLive), "{live_key}", anyIDKeySQL("l.event_id"), "{days}", fmt.Sprint(liveDays),
		"{minutes}", fmt.Sprint(int(w.window()/time.Minute)))
	return r.Replace(v.sql)
}

// ensureViews creates the views that are missing and replaces those whose
// stored definition differs from ktpipe's (whitespace aside), so a worker
// start that changes nothing issues no DDL at all: a worker killed while
// starting can then never leave a view missing. A changed view is
// replaced with CREATE OR REPLACE VIEW, atomic on BigQuery; only where the
// backend fails that (the emulator) is it deleted and created again,
// which leaves a gap of one request.
//
// Views are created through the tables API rather than CREATE VIEW: both
// backends then store the definition exactly as given, so it can be read
// back and compared (the emulator records a DDL view's query in its own
// translated SQL, which would never compare equal).
func (w *Warehouse) ensureViews(ctx context.Context) (created, replaced []string, err error) {
	served, err := w.servedColumns(ctx, schemas.TableFact)
	if err != nil {
		return nil, nil, err
	}
	live, err := w.servedColumns(ctx, schemas.TableLive)
	if err != nil {
		return nil, nil, err
	}
	for c := range served { // the union's columns: those both sides serve
		if live != nil && !live[c] {
			delete(served, c)
		}
	}
	for _, v := range allViews() {
		want := strings.ReplaceAll(w.viewSQL(v), "{columns}", liveColumns(served))
		md, err := w.ds.Table(v.Name).Metadata(ctx)
		switch {
		case isNotFound(err):
			if err := w.createView(ctx, v.Name, want); err != nil {
				return created, replaced, err
			}
			created = append(created, v.Name)
			continue
		case err != nil:
			return created, replaced, fmt.Errorf("read view %s: %w", v.Name, err)
		case md.Type != bigquery.ViewTable:
			return created, replaced, &SchemaError{Table: v.Name, Column: "-", Problem: fmt.Sprintf("is a %s, ktpipe needs a view of that name", md.Type)}
		case sameSQL(md.ViewQuery, want):
			continue
		}
		if err := w.replaceView(ctx, v.Name, want); err != nil {
			return created, replaced, err
		}
		replaced = append(replaced, v.Name)
	}
	return created, replaced, nil
}

// createView creates a view; one another worker created a moment ago is
// left to the comparison of the next start.
func (w *Warehouse) createView(ctx context.Context, name, sql string) error {
	w.ddlHook("create view " + name)
	err := w.ds.Table(name).Create(ctx, &bigquery.TableMetadata{ViewQuery: sql})
	if err != nil && !isConflict(err) {
		return fmt.Errorf("create view %s: %w", name, err)
	}
	return nil
}

// replaceView swaps a view's definition as atomically as the backend
// allows. CREATE OR REPLACE VIEW is one atomic statement on BigQuery. The
// emulator fails it (see orReplaceRefused); only that failure leads to
// delete + create. Any other failure (a bad definition, a lost
// connection) is returned, and the old view stays.
func (w *Warehouse) replaceView(ctx context.Context, name, sql string) error {
	w.ddlHook("replace view " + name)
	err := w.exec(ctx, "replace view "+name, "CREATE OR REPLACE VIEW "+w.ref(name)+" AS "+sql)
	if err == nil || !orReplaceRefused(err) {
		return err
	}
	w.ddlHook("delete view " + name)
	if err := w.ds.Table(name).Delete(ctx); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete view %s: %w", name, err)
	}
	return w.createView(ctx, name, sql)
}

// ddlHook tells a test about a schema change about to be made.
func (w *Warehouse) ddlHook(what string) {
	if w.onDDL != nil {
		w.onDDL(what)
	}
}

// sameSQL compares two view definitions with whitespace normalised: a
// re-indented definition is the same view.
func sameSQL(a, b string) bool {
	return strings.Join(strings.Fields(a), " ") == strings.Join(strings.Fields(b), " ")
}

// ReportRows reads a view, ordered for printing, at most limit rows,
// over the events dated since the UTC date of since (and the records
// quarantined since that date's start), or over all of them when since
// is zero. The views themselves read every partition, as the guide's
// queries do; bounded, the view's query reads only the partitions of
// the days asked for, so what a report costs on BigQuery grows with the
// days it shows, not with the history the tables hold.
func (w *Warehouse) ReportRows(ctx context.Context, v View, limit int, since time.Time) ([]bigquery.Schema, [][]bigquery.Value, error) {
	sql, params := w.reportSQL(v, since)
	if v.OrderBy != "" {
		sql += " ORDER BY " + v.OrderBy
	}
	sql += fmt.Sprintf(" LIMIT %d", limit)
	it, err := w.newQuery("read "+v.Name, sql, params, 0).Read(ctx)
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

// reportSQL is what ReportRows reads of v: the view, or, with since
// set, the view's query over the fact partitions dated since since's
// UTC date and the quarantine's since its start, both bounded by
// parameters so BigQuery prunes the partitions before.
func (w *Warehouse) reportSQL(v View, since time.Time) (string, []bigquery.QueryParameter) {
	if since.IsZero() {
		return "SELECT * FROM " + w.ref(v.Name), nil
	}
	day := civil.DateOf(since.UTC())
	// Only the queries and parameters the view reads: a view of the fact
	// table alone references no quarantine partition at all.
	var with []string
	var params []bigquery.QueryParameter
	if strings.Contains(v.sql, "{fact}") {
		with = append(with, "report_fact AS (SELECT * FROM "+w.ref(schemas.TableFact)+" WHERE event_date >= @report_since_date)")
		params = append(params, bigquery.QueryParameter{Name: "report_since_date", Value: day})
	}
	if strings.Contains(v.sql, "{quarantine}") {
		with = append(with, "report_quarantine AS (SELECT * FROM "+w.ref(schemas.TableQuarantine)+" WHERE quarantined_at >= @report_since)")
		params = append(params, bigquery.QueryParameter{Name: "report_since", Value: day.In(time.UTC)})
	}
	sql := "SELECT * FROM (" + w.viewSQLOver(v, "report_fact", "report_quarantine") + ")"
	if len(with) > 0 {
		sql = "WITH " + strings.Join(with, ",\n") + "\n" + sql
	}
	return sql, params
}

// orReplaceRefused recognises the emulator's failure of CREATE OR REPLACE
// VIEW: it applies the statement to its engine, then fails to record it
// over the existing view ("409 table is already created"), so its
// catalog is stale until the view is deleted and created again. BigQuery
// never answers 409 to a query without a job id of ours; any other error
// (a bad definition, a lost connection) is a real failure.
func orReplaceRefused(err error) bool { return isConflict(err) }
