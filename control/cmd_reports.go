package control

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/report"
	"github.com/ktpipe/ktpipe/warehouse"
)

// Report is one report in reports --output json.
type Report struct {
	Name  string           `json:"name"`
	Title string           `json:"title"`
	Of    string           `json:"of"` // the days it covers (--since)
	Rows  []map[string]any `json:"rows"`
	Error string           `json:"error,omitempty"` // could not be read (exit 1)
}

// reportsJSON is reports --output json: every report that can be read,
// and the error of each that cannot (exit 1, as the table style).
func (c *CLI) reportsJSON(ctx context.Context, args []string) error {
	o, err := c.reportFlags(args)
	if err != nil {
		return err
	}
	if o.html != "" {
		return usagef("reports: --html goes with the table style, not --output json")
	}
	wh, _, closeFn, err := c.openWarehouse(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var out []Report
	failed := 0
	for _, v := range warehouse.Views {
		r := Report{Name: v.Name, Title: v.Title, Of: report.SinceText(o.since), Rows: []map[string]any{}}
		schemas, rows, err := wh.ReportRows(ctx, v, o.limit, o.since)
		if err != nil {
			if ctx.Err() != nil {
				return timedOut(ctx, o.timeout, err)
			}
			r.Error, failed = err.Error(), failed+1
		}
		for _, row := range rows {
			m := map[string]any{}
			for i, f := range schemas[0] {
				m[f.Name] = jsonValue(row[i])
			}
			r.Rows = append(r.Rows, m)
		}
		out = append(out, r)
	}
	if err := c.printJSON(out); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d reports could not be read", failed, len(out))
	}
	return nil
}

// jsonValue gives a BigQuery value its JSON form: numerics as numbers,
// dates and times as text.
func jsonValue(v bigquery.Value) any {
	switch x := v.(type) {
	case *big.Rat:
		f, _ := x.Float64()
		return f
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case civil.Date:
		return x.String()
	}
	return v
}

func (c *CLI) warehouse(ctx context.Context, cfg config.BigQuery) (*warehouse.Warehouse, func(), error) {
	bq, err := warehouse.Dial(ctx, cfg.Project, cfg.Endpoint)
	if err != nil {
		return nil, nil, err
	}
	wh, err := warehouse.New(bq, cfg.Project, cfg.Dataset, cfg.Location)
	if err != nil {
		bq.Close()
		return nil, nil, configError{err}
	}
	return wh, func() { bq.Close() }, nil
}

// openWarehouse opens the warehouse the environment names
// (BIGQUERY_*); closeFn closes its client.
func (c *CLI) openWarehouse(ctx context.Context) (wh *warehouse.Warehouse, cfg config.BigQuery, closeFn func(), err error) {
	if err := c.load(ctx, &cfg); err != nil {
		return nil, cfg, nil, err
	}
	wh, closeFn, err = c.warehouse(ctx, cfg)
	return wh, cfg, closeFn, err
}

// maxReportRows bounds --limit: rows per report a terminal can show.
const maxReportRows = 10000

// reportFlags parses reports' flags, for both output styles.
func (c *CLI) reportFlags(args []string) (o reportOptions, err error) {
	fs := c.flags("reports")
	l := fs.Int("limit", 20, "rows per report (1..10000)")
	h := fs.String("html", "", "also write the reports, data quality and success metrics, with charts, as one HTML page to this file")
	s := fs.String("since", fmt.Sprintf("%dd", report.DefaultSince/(24*time.Hour)), "report the events dated since this day (UTC): RFC 3339 or relative (7d, 48h); all: every day, which reads every partition")
	d := fs.Duration("timeout", defaultReportsTimeout, "give up on the warehouse after this long (1s..1h), exit 1 naming the report it was reading")
	if err := parse(fs, args); err != nil {
		return o, err
	}
	if *l < 1 || *l > maxReportRows {
		return o, usagef("--limit %d: between 1 and %d", *l, maxReportRows)
	}
	if *d < time.Second || *d > time.Hour {
		return o, usagef("--timeout %s: between 1s and 1h", *d)
	}
	o.limit, o.html, o.timeout = *l, *h, *d
	if *s != "all" {
		if o.since, err = config.ParseSince(*s, time.Now()); err != nil {
			return o, usagef("--since: %v", err)
		}
	}
	return o, nil
}

// defaultReportsTimeout bounds a reports run: the guide's standard
// reports take under 10 s each, and an unreachable warehouse is retried
// by its client until the context ends.
const defaultReportsTimeout = 5 * time.Minute

// reportOptions are reports' flags.
type reportOptions struct {
	limit   int
	html    string
	since   time.Time // zero: every day
	timeout time.Duration
}

func (c *CLI) reports(ctx context.Context, args []string) error {
	o, err := c.reportFlags(args)
	if err != nil {
		return err
	}
	wh, cfg, closeFn, err := c.openWarehouse(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// Every report that can be read is printed; the error (exit 1)
	// names the ones that could not.
	userMap, _ := c.lookuper().Lookup("KTPIPE_USER_MAP")
	err = report.PrintViews(ctx, c.Stdout, wh, warehouse.PrintedViews(userMap != ""), o.limit, o.since)
	if o.html != "" {
		wrote, herr := report.WriteFile(ctx, wh, report.Options{Dataset: cfg.Dataset, TableRows: o.limit, Since: o.since}, o.html)
		if wrote {
			fmt.Fprintf(c.Stdout, "\nwrote %s\n", o.html)
		}
		err = errors.Join(err, herr)
	}
	return timedOut(ctx, o.timeout, err)
}

// timedOut says a reports run that ran out of --timeout did so.
func timedOut(ctx context.Context, d time.Duration, err error) error {
	return pastBound(ctx, err, fmt.Sprintf("reports: gave up on the warehouse after %s (--timeout)", d))
}
