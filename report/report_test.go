package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/ktpipe/ktpipe/warehouse"
)

var now = time.Date(2026, 11, 29, 15, 0, 0, 0, time.UTC)

type fakeSource struct {
	views  map[string]result
	failed string
	audits []warehouse.AuditRow
	since  map[string]time.Time // the bound each view was read with
}

func (f *fakeSource) ReportRows(_ context.Context, v warehouse.View, limit int, since time.Time) ([]bigquery.Schema, [][]bigquery.Value, error) {
	if f.since == nil {
		f.since = map[string]time.Time{}
	}
	f.since[v.Name] = since
	if v.Name == f.failed {
		return nil, nil, errors.New("404 view not found")
	}
	r := f.views[v.Name]
	rows := r.rows
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return []bigquery.Schema{r.schema}, rows, nil
}

func (f *fakeSource) AuditHistory(context.Context, time.Time, int) ([]warehouse.AuditRow, error) {
	return f.audits, nil
}

func schema(names ...string) bigquery.Schema {
	var s bigquery.Schema
	for _, n := range names {
		s = append(s, &bigquery.FieldSchema{Name: n})
	}
	return s
}

func fixture() *fakeSource {
	day := civil.DateOf(now)
	rat := func(s string) *big.Rat { r, _ := new(big.Rat).SetString(s); return r }
	return &fakeSource{views: map[string]result{
		"report_daily_spend_by_team": {schema("event_date", "team", "requests", "tokens", "spend_usd"), [][]bigquery.Value{
			{day, "search", int64(10), int64(1000), rat("1.25")}, {day, "ads", int64(5), int64(500), rat("0.5")},
			{day.AddDays(-1), "search", int64(8), int64(800), rat("2")}}},
		"report_policy_effectiveness": {schema("policy", "evaluated", "triggered", "blocked", "trigger_rate"), [][]bigquery.Value{
			{"pii", int64(100), int64(20), int64(5), 0.2}, {"jailbreak", int64(100), int64(4), int64(4), 0.04}, {"never", int64(100), int64(0), int64(0), 0.0}}},
		"report_model_usage": {schema("provider", "model", "requests", "request_share", "input_tokens", "output_tokens", "spend_usd", "input_cost_per_1k", "output_cost_per_1k"), [][]bigquery.Value{
			{"openai", "gpt-4o", int64(10), 0.5, int64(1), int64(1), rat("3.5"), nil, nil}, {"anthropic", "claude", int64(10), 0.5, int64(1), int64(1), rat("1.75"), nil, nil}}},
		"dq_duplicate_rate":    {schema("fact_rows", "distinct_ids", "duplicate_rate"), [][]bigquery.Value{{int64(20), int64(20), 0.0}}},
		"dq_schema_violations": {schema("day", "field", "rule", "records"), [][]bigquery.Value{{day, "cost", "must be non-negative", int64(2)}}},
		// 14:00 and 12:00 have events, 13:00 none: a gap.
		"dq_hourly_counts": {schema("event_date", "event_hour", "events"), [][]bigquery.Value{{day, int64(14), int64(7)}, {day, int64(12), int64(3)}}},
		"dq_ingestion_lag": {schema("latest_event", "latest_load", "lag_seconds"), [][]bigquery.Value{{now, now, int64(30)}}},
	}, audits: []warehouse.AuditRow{
		{AuditedAt: now.Add(-time.Minute), IngestionLagSeconds: 42, LagKnown: true, CompletenessRatio: 1},
		{AuditedAt: now.Add(-6 * time.Minute), IngestionLagSeconds: 400, LagKnown: true, CompletenessRatio: 0.99},
	}}
}

func render(t *testing.T, src Source) (string, error) {
	t.Helper()
	p, err := Build(context.Background(), src, Options{Dataset: "keeptrusts", Now: now})
	var buf bytes.Buffer
	if werr := Write(&buf, p); werr != nil {
		t.Fatal(werr)
	}
	return buf.String(), err
}

func TestPageChartsAndNumbers(t *testing.T) {
	html, err := render(t, fixture())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"chart-spend", "chart-block-rate", "chart-model-cost", "chart-hourly", "chart-lag"} {
		m := regexp.MustCompile(`(?s)<svg id="` + id + `" class="chart"[^>]*>(.*?)</svg>`).FindStringSubmatch(html)
		if m == nil || !strings.Contains(m[1], `class="mark"`) {
			t.Errorf("chart %s missing or empty", id)
		}
	}
	for _, want := range []string{
		`data-x="2026-11-29" data-series="search" data-value="1.25"`, // spend per day by team
		`data-label="pii" data-value="0.25"`,                         // block rate 5 / 20
		`data-label="openai / gpt-4o" data-value="3.5"`,              // cost by model
		`class="gap" data-x="2026-11-29 13:00"`,                      // the hour without events, visible
		`data-x="2026-11-29 14:00" data-value="7"`,
		`data-value="400"`, // lag history
		`<td>1.25</td>`, `<td>must be non-negative</td>`,
		`data-seconds="`, `&lt; 10 s`,
		`<td class="ok">42 s</td>`, `<td class="ok">100.000 %</td>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(html, `data-label="never"`) {
		t.Error("a policy never triggered has no block rate to draw")
	}
	// Self-contained: nothing fetched at view time, no script.
	if regexp.MustCompile(`(?i)<script|<link|\ssrc=|href="http|@import|url\(`).MatchString(html) {
		t.Error("page references an external resource or script")
	}
}

func TestPageNamesAFailedQueryAndKeepsTheRest(t *testing.T) {
	src := fixture()
	src.failed = "report_model_usage"
	html, err := render(t, src)
	if err == nil || !strings.Contains(err.Error(), "report_model_usage") {
		t.Fatalf("error %v does not name the failed query", err)
	}
	if !strings.Contains(html, "could not be read: 404 view not found") || !strings.Contains(html, `id="chart-spend"`) {
		t.Fatal("failed query not shown, or the others dropped")
	}
}

func TestPageWithoutData(t *testing.T) {
	src := &fakeSource{views: map[string]result{}}
	for _, v := range warehouse.Views {
		src.views[v.Name] = result{schema: schema("x")}
	}
	html, err := render(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(html, `class="chart empty"`); n != 5 {
		t.Errorf("%d empty charts, want 5 saying no data", n)
	}
}

// PrintViews prints every view it can and names the one it could not read.
func TestPrintViewsNamesTheMissingOne(t *testing.T) {
	src := fixture()
	missing := warehouse.Views[0]
	src.failed = missing.Name
	var out bytes.Buffer
	since := now.Add(-DefaultSince)
	err := PrintViews(context.Background(), &out, src, warehouse.Views, 5, since)
	if err == nil || !strings.Contains(err.Error(), missing.Name) || !strings.Contains(err.Error(), fmt.Sprintf("1 of %d", len(warehouse.Views))) {
		t.Fatalf("error %v, want one naming %s", err, missing.Name)
	}
	for _, v := range warehouse.Views[1:] {
		if !strings.Contains(out.String(), "== "+v.Title+" ("+v.Name+")") {
			t.Errorf("report %s not printed:\n%s", v.Name, out.String())
		}
	}
	if !strings.Contains(out.String(), "("+missing.Name+")\ncould not be read") {
		t.Errorf("the missing report is not named in the output:\n%s", out.String())
	}
	// Every view is read over the days asked for, and the output says which.
	for _, v := range warehouse.Views {
		if !src.since[v.Name].Equal(since) {
			t.Errorf("%s read since %v, want %v", v.Name, src.since[v.Name], since)
		}
	}
	if !strings.HasPrefix(out.String(), "reports of events dated 2026-10-30 (UTC) or later") {
		t.Errorf("the output does not say which days it reports:\n%s", out.String())
	}
	// A table: the header, then the rows as the terminal shows values.
	if !strings.Contains(out.String(), "== "+warehouse.Views[1].Title) || !strings.Contains(out.String(), "0.2000") {
		t.Errorf("policy table not printed with its values:\n%s", out.String())
	}
}

// The page reads every view over the days asked for and says which.
func TestPageReportsTheDaysAsked(t *testing.T) {
	src := fixture()
	since := now.Add(-7 * 24 * time.Hour)
	p, err := Build(context.Background(), src, Options{Dataset: "keeptrusts", Now: now, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range warehouse.Views {
		if !src.since[v.Name].Equal(since) {
			t.Errorf("%s read since %v, want %v", v.Name, src.since[v.Name], since)
		}
	}
	var buf bytes.Buffer
	if err := Write(&buf, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Reports and data quality of events dated 2026-11-22 (UTC) or later") {
		t.Errorf("the page does not say which days it reports")
	}
	html, _ := render(t, fixture())
	if !strings.Contains(html, "Reports and data quality of events of every day") {
		t.Errorf("the page without a bound does not say it reports every day")
	}
}
