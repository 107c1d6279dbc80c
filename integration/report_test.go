package integration

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ktpipe/ktpipe/report"
	"github.com/ktpipe/ktpipe/warehouse"
)

// renderedPage is what the browser shows of the HTML report.
type renderedPage struct {
	Charts []struct {
		ID    string
		W, H  float64
		Marks []struct {
			Label, X, Series string
			Value, W, H      float64
		}
	}
	Views map[string]struct {
		Seconds float64
		Rows    [][]string
	}
	Metrics map[string]string
}

const extractJS = `(() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(s => {
    const b = s.getBoundingClientRect();
    return {ID: s.id, W: b.width, H: b.height, Marks: [...s.querySelectorAll('.mark')].map(m => {
      const r = m.getBoundingClientRect();
      return {Label: m.getAttribute('data-label') || '', X: m.getAttribute('data-x') || '', Series: m.getAttribute('data-series') || '',
        Value: parseFloat(m.getAttribute('data-value')), W: r.width, H: r.height};
    })};
  });
  const views = {};
  document.querySelectorAll('section[data-view]').forEach(s => {
    views[s.dataset.view] = {Seconds: parseFloat(s.querySelector('.elapsed').dataset.seconds),
      Rows: [...s.querySelectorAll('table.view tr')].slice(1).map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))};
  });
  const metrics = {};
  document.querySelectorAll('#metrics tr[data-metric]').forEach(tr => { metrics[tr.dataset.metric] = tr.children[2].textContent; });
  return {Charts: charts, Views: views, Metrics: metrics};
})()`

// checkReportInBrowser opens the HTML report in real headless Chromium
// and checks it: no console error, no exception, no request beyond the
// file itself; every chart drawn and not empty; every number shown equal
// to what the warehouse returns now. KTPIPE_REPORT_SCREENSHOT=FILE saves
// a PNG of the top of the page (the README's).
func checkReportInBrowser(t *testing.T, s *stack, file string, tableRows int, since time.Time) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the report test needs Debian's chromium (scripts/install-tools.sh): %v", err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()
	var mu sync.Mutex
	var problems []string
	note := func(p string) { mu.Lock(); problems = append(problems, p); mu.Unlock() }
	err = chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				note(fmt.Sprintf("console %s", e.Type))
			}
		case *runtime.EventExceptionThrown:
			note("exception: " + e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError || e.Entry.Level == log.EntryLevelWarning {
				note(fmt.Sprintf("log %s: %s %s", e.Entry.Level, e.Entry.Text, e.Entry.URL))
			}
		case *network.EventRequestWillBeSent:
			if !strings.HasPrefix(e.Request.URL, "file://") {
				note("network request at view time: " + e.Request.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1040, 1500), chromedp.Navigate("file://"+abs), chromedp.WaitReady("body")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[renderedPage](extractJS))
	if err != nil {
		t.Fatalf("chromium: read the page: %v", err)
	}
	if shot := os.Getenv("KTPIPE_REPORT_SCREENSHOT"); shot != "" {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("chromium: screenshot: %v", err)
		}
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s: %d bytes", shot, len(png))
	}
	mu.Lock()
	seen := append([]string(nil), problems...)
	mu.Unlock()
	for _, p := range seen {
		t.Errorf("rendering %s: %s", file, p)
	}
	// Every chart is there, drawn, and has marks of non-zero size.
	charts := map[string]int{}
	for i, c := range page.Charts {
		charts[c.ID] = i
		drawn := 0
		for _, m := range c.Marks {
			if m.W > 0 && m.H > 0 {
				drawn++
			}
		}
		if c.W == 0 || c.H == 0 || drawn == 0 {
			t.Errorf("chart %s is empty (%gx%g, %d of %d marks drawn)", c.ID, c.W, c.H, drawn, len(c.Marks))
		}
	}
	for _, id := range []string{"chart-spend", "chart-block-rate", "chart-model-cost", "chart-hourly", "chart-lag"} {
		if _, ok := charts[id]; !ok {
			t.Errorf("chart %s missing", id)
		}
	}

	// Every table shows the warehouse's rows (the first tableRows; rows
	// that tie in the ORDER BY may come in another order, so as a multiset).
	ctx2 := context.Background()
	all := map[string][][]any{}
	for _, v := range warehouse.Views {
		_, rows, err := s.wh.ReportRows(ctx2, v, 100000, since)
		if err != nil {
			t.Fatal(err)
		}
		shown, ok := page.Views[v.Name]
		if !ok {
			t.Errorf("report %s not on the page", v.Name)
			continue
		}
		if shown.Seconds <= 0 {
			t.Errorf("report %s: no run time shown", v.Name)
		}
		want := map[string]int{}
		for _, r := range rows {
			all[v.Name] = append(all[v.Name], anyRow(r))
			want[rowKey(v.Name, formatRow(r))]++
		}
		n := min(len(rows), tableRows)
		if len(rows) == 0 {
			n = 1 // "(no rows)"
		}
		if len(shown.Rows) != n {
			t.Errorf("report %s: %d rows shown, want %d", v.Name, len(shown.Rows), n)
		}
		for _, r := range shown.Rows {
			if len(rows) == 0 {
				break
			}
			k := rowKey(v.Name, r)
			if want[k] == 0 {
				t.Errorf("report %s shows a row the warehouse does not have: %q", v.Name, r)
			}
			want[k]--
		}
	}

	// The charts' numbers are the warehouse's.
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	mark := func(chart string, match func(label, x, series string) bool) (float64, bool) {
		i, ok := charts[chart]
		if !ok {
			return 0, false
		}
		for _, m := range page.Charts[i].Marks {
			if match(m.Label, m.X, m.Series) {
				return m.Value, true
			}
		}
		return 0, false
	}
	checked := 0
	for _, r := range all["report_model_usage"] { // provider, model, requests, share, in, out, spend_usd, ...
		label := report.Format(r[0]) + " / " + report.Format(r[1])
		got, ok := mark("chart-model-cost", func(l, _, _ string) bool { return l == label })
		if want := report.Float(r[6]); !ok || !near(got, want) {
			t.Errorf("cost by model %s: chart %g (found %v), warehouse %g", label, got, ok, want)
		}
		checked++
	}
	for _, r := range all["report_policy_effectiveness"] { // policy, evaluated, triggered, blocked, rate
		if report.Float(r[2]) == 0 {
			continue
		}
		got, ok := mark("chart-block-rate", func(l, _, _ string) bool { return l == report.Format(r[0]) })
		if want := report.Float(r[3]) / report.Float(r[2]); !ok || !near(got, want) {
			t.Errorf("block rate %s: chart %g (found %v), warehouse %g", r[0], got, ok, want)
		}
		checked++
	}
	for _, r := range all["report_daily_spend_by_team"] { // event_date, team, requests, tokens, spend_usd
		got, ok := mark("chart-spend", func(_, x, series string) bool { return x == report.Format(r[0]) && series == report.Format(r[1]) })
		if want := report.Float(r[4]); (ok || want != 0) && !near(got, want) {
			t.Errorf("spend %s %s: chart %g (found %v), warehouse %g", r[0], r[1], got, ok, want)
		}
		checked++
	}
	for _, r := range all["dq_hourly_counts"] { // event_date, event_hour, events
		x := fmt.Sprintf("%s %02d:00", report.Format(r[0]), int(report.Float(r[1])))
		if got, ok := mark("chart-hourly", func(_, mx, _ string) bool { return mx == x }); ok && !near(got, report.Float(r[2])) {
			t.Errorf("events at %s: chart %g, warehouse %v", x, got, r[2])
		}
		checked++
	}
	audits, err := s.wh.AuditHistory(ctx2, time.Now().Add(-7*24*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range audits {
		at := a.AuditedAt.UTC().Format(time.RFC3339)
		if got, ok := mark("chart-lag", func(_, x, _ string) bool { return x == at }); !ok || !near(got, a.IngestionLagSeconds) {
			t.Errorf("lag at %s: chart %g (found %v), audit %g", at, got, ok, a.IngestionLagSeconds)
		}
		checked++
	}
	if len(audits) > 0 {
		if got, want := page.Metrics["Event ingestion latency"], fmt.Sprintf("%.0f s", audits[0].IngestionLagSeconds); got != want {
			t.Errorf("success metric ingestion latency %q, latest audit %q", got, want)
		}
	}
	t.Logf("report: %d charts, %d chart values checked against the warehouse", len(page.Charts), checked)
}

func anyRow(r []bigquery.Value) []any {
	out := make([]any, len(r))
	for i, v := range r {
		out[i] = v
	}
	return out
}

func formatRow(r []bigquery.Value) []string {
	out := make([]string, len(r))
	for i, v := range r {
		out[i] = report.Format(v)
	}
	return out
}

// rowKey identifies a row; the newest audit's columns
// (dq_ingestion_lag's lag and when it was measured) may differ between
// two reads and are left out.
func rowKey(view string, cells []string) string {
	if view == "dq_ingestion_lag" && len(cells) == 5 {
		cells = cells[:2]
	}
	return strings.Join(cells, "\x00")
}
