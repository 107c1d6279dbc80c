package control

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/warehouse"
)

// Report is one report in reports --output json.
type Report struct {
	Name  string           `json:"name"`
	Title string           `json:"title"`
	Rows  []map[string]any `json:"rows"`
	Error string           `json:"error,omitempty"` // could not be read (exit 1)
}

// reportsJSON is reports --output json: every report that can be read,
// and the error of each that cannot (exit 1, as the table style).
func (c *CLI) reportsJSON(ctx context.Context, args []string) error {
	limit, html, err := c.reportFlags(args)
	if err != nil {
		return err
	}
	if html != "" {
		return usagef("reports: --html goes with the table style, not --output json")
	}
	var cfg config.BigQuery
	if err := c.load(ctx, &cfg); err != nil {
		return err
	}
	wh, closeFn, err := c.warehouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	var out []Report
	failed := 0
	for _, v := range warehouse.Views {
		r := Report{Name: v.Name, Title: v.Title, Rows: []map[string]any{}}
		schemas, rows, err := wh.ReportRows(ctx, v, limit)
		if err != nil {
			if ctx.Err() != nil {
				return err
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
