// Package report writes ktpipe's reports as one self-contained HTML page:
// the guide's three standard reports, the data-quality queries and the
// guide's success metrics, with charts. The page needs nothing at view
// time (inline CSS, inline SVG, no script), so it can be mailed or
// archived; each query's own run time is shown against the guide's
// "standard reports under 10 s".
package report

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"os"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/ktpipe/ktpipe/warehouse"
)

// QueryTarget is the guide's success metric for standard reports.
const QueryTarget = 10 * time.Second

// Bounds of what the page reads: rows a table shows by default, and the
// history its charts draw.
const (
	DefaultTableRows = 20
	spendDays        = 30                 // spend per day chart
	chartHours       = 7 * 24             // events per hour chart
	lagHistory       = 7 * 24 * time.Hour // lag over time (≤ warehouse.MaxAuditRows audits)
	chartRows        = 2000               // rows read for a chart (30 days × ~60 teams)
)

// Source is what the report reads (*warehouse.Warehouse).
type Source interface {
	ReportRows(ctx context.Context, v warehouse.View, limit int, since time.Time) ([]bigquery.Schema, [][]bigquery.Value, error)
	AuditHistory(ctx context.Context, since time.Time, limit int) ([]warehouse.AuditRow, error)
}

// Options say what to report on.
type Options struct {
	Dataset       string        // shown in the title
	Now           time.Time     // zero: time.Now()
	TableRows     int           // rows per table; 0: DefaultTableRows
	AuditInterval time.Duration // how often the Audit runs (uptime figure); 0: 5 min
	// Since bounds the reports and data-quality queries to the events
	// dated since its UTC date (warehouse.ReportRows); zero: every day.
	Since time.Time
}

// Page is everything the template draws.
type Page struct {
	Dataset   string
	Generated time.Time
	Since     string // what the reports cover: SinceText
	Metrics   []Metric
	Reports   []Section // the guide's three standard reports
	Quality   []Section // data quality
}

// Metric is one of the guide's success metrics.
type Metric struct {
	Name, Target, Value, Source string
	Status                      string // ok, bad, na
}

// Section is one query: its table, its chart and its run time.
type Section struct {
	Name, Title string
	Elapsed     time.Duration
	Columns     []string
	Rows        [][]string
	Total       int // rows the query returned (the table shows the first)
	Chart       template.HTML
	ChartTitle  string
	Err         string
}

// Seconds is the run time as shown.
func (s Section) Seconds() string { return fmt.Sprintf("%.2f", s.Elapsed.Seconds()) }

// Fast reports whether the query met the guide's target.
func (s Section) Fast() bool { return s.Elapsed < QueryTarget }

type result struct {
	schema bigquery.Schema
	rows   [][]bigquery.Value
}

func (r result) col(name string) int {
	for i, f := range r.schema {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// DefaultSince is how far back `ktpipe reports` reads unless told
// (--since): on BigQuery a report's query is billed for every partition
// it reads, so reading a year to print the latest rows would cost a
// year's bytes at every run.
const DefaultSince = 30 * 24 * time.Hour

// SinceText says which events reports bounded by since cover.
func SinceText(since time.Time) string {
	if since.IsZero() {
		return "events of every day"
	}
	return "events dated " + since.UTC().Format(time.DateOnly) + " (UTC) or later, records quarantined since then"
}

// Build runs every query and assembles the page. A query that fails is
// shown as failed on the page and named in the error; the rest is built.
func Build(ctx context.Context, src Source, o Options) (*Page, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.TableRows <= 0 {
		o.TableRows = DefaultTableRows
	}
	if o.AuditInterval <= 0 {
		o.AuditInterval = 5 * time.Minute
	}
	p := &Page{Dataset: o.Dataset, Generated: o.Now.UTC(), Since: SinceText(o.Since)}
	var failed []string
	var errs []error
	results := map[string]result{}
	for i, v := range warehouse.Views {
		limit := o.TableRows
		switch v.Name {
		case "report_daily_spend_by_team", "report_policy_effectiveness", "report_model_usage":
			limit = max(limit, chartRows)
		case "dq_hourly_counts":
			limit = max(limit, chartHours)
		}
		start := time.Now()
		schemas, rows, err := src.ReportRows(ctx, v, limit, o.Since)
		s := Section{Name: v.Name, Title: v.Title, Elapsed: time.Since(start)}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			s.Err = err.Error()
			failed, errs = append(failed, v.Name), append(errs, err)
		} else {
			r := result{schema: schemas[0], rows: rows}
			results[v.Name] = r
			s.Total = len(rows)
			for _, f := range r.schema {
				s.Columns = append(s.Columns, f.Name)
			}
			for _, row := range rows[:min(len(rows), o.TableRows)] {
				cells := make([]string, len(row))
				for j, c := range row {
					cells[j] = Format(c)
				}
				s.Rows = append(s.Rows, cells)
			}
			s.ChartTitle, s.Chart = chart(v.Name, r)
		}
		if i < len(warehouse.Reports) {
			p.Reports = append(p.Reports, s)
		} else {
			p.Quality = append(p.Quality, s)
		}
	}
	start := time.Now()
	audits, err := src.AuditHistory(ctx, o.Now.Add(-lagHistory), warehouse.MaxAuditRows)
	lag := Section{Name: "audit", Title: "Ingestion lag over time (audit table, last 7 days)", Elapsed: time.Since(start),
		Columns: []string{"audited_at", "ingestion_lag_seconds", "completeness_ratio", "fact_duplicate_ratio", "schema_violations"}}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		lag.Err = err.Error()
		failed, errs = append(failed, "audit"), append(errs, err)
	} else {
		lag.Total = len(audits)
		var pts []point
		for i, a := range audits {
			if a.LagKnown {
				pts = append(pts, point{a.AuditedAt, a.IngestionLagSeconds})
			}
			if i < o.TableRows {
				l := "-"
				if a.LagKnown {
					l = Format(a.IngestionLagSeconds)
				}
				lag.Rows = append(lag.Rows, []string{Format(a.AuditedAt), l, Format(a.CompletenessRatio), Format(a.FactDuplicateRatio), Format(a.SchemaViolations)})
			}
		}
		lag.ChartTitle, lag.Chart = "Ingestion lag (s); dashed: the 300 s alert", line("chart-lag", pts, 300, " s")
	}
	p.Quality = append(p.Quality, lag)
	p.Metrics = metrics(p, results, audits, err == nil, o)
	if len(failed) > 0 {
		return p, fmt.Errorf("%d queries could not be read (%s): %w", len(failed), strings.Join(failed, ", "), errors.Join(errs...))
	}
	return p, nil
}

// chart draws a view's chart, if it has one.
func chart(name string, r result) (string, template.HTML) {
	switch name {
	case "report_daily_spend_by_team":
		d, t, v := r.col("event_date"), r.col("team"), r.col("spend_usd")
		spend := map[string]map[string]float64{}
		teamTotal := map[string]float64{}
		var days []string
		for _, row := range r.rows {
			day, team := Format(row[d]), Format(row[t])
			if spend[day] == nil {
				if len(days) == spendDays {
					continue // rows come newest day first
				}
				days = append(days, day)
				spend[day] = map[string]float64{}
			}
			spend[day][team] += Float(row[v])
			teamTotal[team] += Float(row[v])
		}
		sort.Strings(days)
		teams := make([]string, 0, len(teamTotal))
		for team := range teamTotal {
			teams = append(teams, team)
		}
		sort.Slice(teams, func(i, j int) bool {
			return teamTotal[teams[i]] > teamTotal[teams[j]] || teamTotal[teams[i]] == teamTotal[teams[j]] && teams[i] < teams[j]
		})
		return "Spend per day by team (USD, last 30 days)", stacked("chart-spend", days, teams, func(x, s string) float64 { return spend[x][s] }, "$")
	case "report_policy_effectiveness":
		pol, trig, blk := r.col("policy"), r.col("triggered"), r.col("blocked")
		var bars []bar
		for _, row := range r.rows {
			t, b := Float(row[trig]), Float(row[blk])
			if t == 0 {
				continue
			}
			rate := b / t
			bars = append(bars, bar{Label: Format(row[pol]), Value: rate, Text: fmt.Sprintf("%.1f %% (%d of %d)", rate*100, int64(b), int64(t))})
		}
		sort.SliceStable(bars, func(i, j int) bool { return bars[i].Value > bars[j].Value })
		return "Block rate by policy (blocked / triggered)", hbars("chart-block-rate", bars)
	case "report_model_usage":
		pr, m, v := r.col("provider"), r.col("model"), r.col("spend_usd")
		var bars []bar
		for _, row := range r.rows {
			c := Float(row[v])
			bars = append(bars, bar{Label: Format(row[pr]) + " / " + Format(row[m]), Value: c, Text: "$" + Format(row[v])})
		}
		sort.SliceStable(bars, func(i, j int) bool { return bars[i].Value > bars[j].Value })
		return "Cost by model (USD)", hbars("chart-model-cost", bars)
	case "dq_hourly_counts":
		d, h, n := r.col("event_date"), r.col("event_hour"), r.col("events")
		counts := map[time.Time]int64{}
		var newest time.Time
		for _, row := range r.rows {
			day, ok := row[d].(civil.Date)
			if !ok {
				continue
			}
			t := day.In(time.UTC).Add(time.Duration(Float(row[h])) * time.Hour)
			counts[t] = int64(Float(row[n]))
			if t.After(newest) {
				newest = t
			}
		}
		var hours []time.Time
		if !newest.IsZero() {
			for t := newest.Add(-(chartHours - 1) * time.Hour); !t.After(newest); t = t.Add(time.Hour) {
				hours = append(hours, t)
			}
		}
		return "Events per hour (last 7 days to the newest; red: an hour with no events)", hourly("chart-hourly", hours, counts)
	}
	return "", ""
}

func metrics(p *Page, results map[string]result, audits []warehouse.AuditRow, auditOK bool, o Options) []Metric {
	na := Metric{Status: "na", Value: "unknown"}
	lat, comp, up := na, na, na
	lat.Name, lat.Target, lat.Source = "Event ingestion latency", "< 5 minutes", "latest audit: API newest vs warehouse newest"
	comp.Name, comp.Target, comp.Source = "Data completeness", "> 99.9 %", "latest audit: fact + quarantine vs API count=true, last closed hours"
	up.Name, up.Target, up.Source = "Pipeline uptime", "99.9 %", fmt.Sprintf("audits that ran / audits due (every %s), last 24 h: the Audit runs only while Temporal and a worker are up", o.AuditInterval)
	if auditOK && len(audits) > 0 {
		a := audits[0]
		if a.LagKnown {
			lat.Value, lat.Status = fmt.Sprintf("%.0f s", a.IngestionLagSeconds), okIf(a.IngestionLagSeconds <= 300)
		}
		comp.Value, comp.Status = fmt.Sprintf("%.3f %%", a.CompletenessRatio*100), okIf(a.CompletenessRatio >= 0.999)
		ran := 0
		for _, a := range audits {
			if !a.AuditedAt.Before(o.Now.Add(-24 * time.Hour)) {
				ran++
			}
		}
		share := min(1, float64(ran)/float64(24*time.Hour/o.AuditInterval))
		up.Value, up.Status = fmt.Sprintf("%.2f %% (%d audits)", share*100, ran), okIf(share >= 0.999)
	}
	perf := Metric{Name: "Query performance", Target: "< 10 s for standard reports", Source: "run time of each standard report's query, this page"}
	slowest := time.Duration(0)
	perf.Status = "ok"
	for _, s := range p.Reports {
		slowest = max(slowest, s.Elapsed)
		if s.Err != "" {
			perf.Status = "na"
		}
	}
	perf.Value = fmt.Sprintf("slowest %.2f s", slowest.Seconds())
	if slowest >= QueryTarget {
		perf.Status = "bad"
	}
	dup := Metric{Name: "Duplicate events (fact)", Target: "< 0.1 % (ktpipe: 0)", Source: "dq_duplicate_rate", Status: "na", Value: "unknown"}
	if r, ok := results["dq_duplicate_rate"]; ok && len(r.rows) == 1 {
		v := Float(r.rows[0][r.col("duplicate_rate")])
		dup.Value, dup.Status = fmt.Sprintf("%.4f %%", v*100), okIf(v <= 0.001)
	}
	schema := Metric{Name: "Schema evolution incidents", Target: "zero unplanned", Status: "na", Value: "refused at worker start",
		Source: "a worker stops on a type change or new REQUIRED column; additive changes are logged"}
	return []Metric{lat, comp, up, perf, dup, schema}
}

func okIf(b bool) string {
	if b {
		return "ok"
	}
	return "bad"
}

// Write renders the page.
func Write(w io.Writer, p *Page) error {
	return page.Execute(w, p)
}

// WriteFile builds the page from src and writes it to path (through a
// temporary file, so a reader never sees half a page). The page is
// written even when some queries failed (wrote true); the error then
// names them.
func WriteFile(ctx context.Context, src Source, o Options, path string) (wrote bool, err error) {
	p, buildErr := Build(ctx, src, o)
	if p == nil {
		return false, buildErr
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return false, fmt.Errorf("write report: %w", err)
	}
	err = Write(f, p)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("write report %s: %w", path, err)
	}
	return true, buildErr
}

// Format shows a warehouse value as the terminal reports do.
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case *big.Rat:
		return strings.TrimRight(strings.TrimRight(x.FloatString(6), "0"), ".")
	case float64:
		return fmt.Sprintf("%.4f", x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case civil.Date:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// Float is a numeric warehouse value as a float64 (0 for anything else).
func Float(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	case *big.Rat:
		f, _ := x.Float64()
		return f
	}
	return 0
}
