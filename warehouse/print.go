package warehouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"text/tabwriter"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
)

// PrintViews writes every view it can read, in order. A view that cannot
// be read (missing, or its query fails) does not hide the others: it is
// named on out where its table would be, and the error returned names
// every such view.
func (w *Warehouse) PrintViews(ctx context.Context, out io.Writer, views []View, limit int) error {
	var failed []string
	var errs []error
	for _, v := range views {
		if err := w.PrintView(ctx, out, v, limit); err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(out, "\n== %s (%s)\ncould not be read: %v\n", v.Title, v.Name, err)
			failed = append(failed, v.Name)
			errs = append(errs, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d reports could not be read (%s): %w", len(failed), len(views), strings.Join(failed, ", "), errors.Join(errs...))
	}
	return nil
}

// PrintView writes a view's first rows as an aligned table.
func (w *Warehouse) PrintView(ctx context.Context, out io.Writer, v View, limit int) error {
	schemas, rows, err := w.ReportRows(ctx, v, limit)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== %s (%s)\n", v.Title, v.Name)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	var head []string
	for _, f := range schemas[0] {
		head = append(head, f.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = formatValue(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no rows)\t")
	}
	return tw.Flush()
}

func formatValue(v bigquery.Value) string {
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
