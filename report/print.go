package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ktpipe/ktpipe/warehouse"
)

// PrintViews writes every view it can read as an aligned table, in
// order, for a terminal (`ktpipe reports`). A view that cannot be read
// (missing, or its query fails) does not hide the others: it is named on
// out where its table would be, and the error returned names every such
// view.
func PrintViews(ctx context.Context, out io.Writer, src Source, views []warehouse.View, limit int, since time.Time) error {
	fmt.Fprintf(out, "reports of %s\n", SinceText(since))
	var failed []string
	var errs []error
	for _, v := range views {
		if err := printView(ctx, out, src, v, limit, since); err != nil {
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

// printView writes a view's first rows as an aligned table.
func printView(ctx context.Context, out io.Writer, src Source, v warehouse.View, limit int, since time.Time) error {
	schemas, rows, err := src.ReportRows(ctx, v, limit, since)
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
			cells[i] = Format(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no rows)\t")
	}
	return tw.Flush()
}
