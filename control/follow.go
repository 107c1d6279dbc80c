package control

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/workflows"
)

// Follow waits for run and decodes its result into out. While the run
// answers the progress query with windows (a Backfill: the CLI follows
// only those), it draws them as a progress bar on w; any other run is
// just waited for.
func Follow(ctx context.Context, c client.Client, run client.WorkflowRun, w io.Writer, out any) error {
	done := make(chan error, 1)
	go func() { done <- run.Get(ctx, out) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	for {
		select {
		case err := <-done:
			if last != "" && isTerminal(w) {
				fmt.Fprintln(w)
			}
			return err
		case <-tick.C:
			v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.ProgressQuery)
			if err != nil {
				continue
			}
			var p workflows.BackfillProgress
			if v.Get(&p) != nil || p.Windows == 0 {
				continue
			}
			line := progressBar(p)
			if line != last {
				if isTerminal(w) {
					fmt.Fprint(w, "\r"+line)
				} else {
					fmt.Fprintln(w, line)
				}
				last = line
			}
		}
	}
}

func progressBar(p workflows.BackfillProgress) string {
	const width = 30
	done := p.Loaded + p.Skipped + p.Failed
	filled := width * done / p.Windows
	return fmt.Sprintf("    [%s%s] %d/%d windows  %d rows  %d quarantined  %d running  %d failed",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, p.Windows, p.Rows, p.Quarantined, len(p.Running), p.Failed)
}

// PrintReconcile writes a reconciliation as a table.
func PrintReconcile(w io.Writer, r workflows.ReconcileResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "window\tapi count\tfact\tquarantined\tgap\t")
	recounted := 0
	for _, c := range r.Windows {
		q := strconv.FormatInt(c.Quarantined, 10)
		switch {
		case c.Recounted:
			q += " *" // counted again with count=true: its gap counts the quarantine
			recounted++
		case r.GroupBy:
			q = "-" // not counted: group_by's count is compared with fact alone
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t\n", c.Since.UTC().Format("2006-01-02 15:04"), c.Source, c.Fact, q, c.Gap)
	}
	tw.Flush()
	if r.GroupBy {
		fmt.Fprintf(w, "    api count: the API's group_by over the range in one call (gap = api count - fact; the quarantine is not counted)")
		if recounted > 0 {
			fmt.Fprintf(w, "; * %d windows whose group_by count differed from fact, counted again with count=true (gap = api count - fact - quarantined)", recounted)
		}
		fmt.Fprintf(w, "; %d windows with an unexplained gap\n", len(r.Gaps))
		return
	}
	fmt.Fprintf(w, "    %d quarantined records had no usable timestamp (quarantined since 30 days before the range; they explain gaps up to that many); %d windows with an unexplained gap\n", r.Unplaced, len(r.Gaps))
}

// isTerminal reports whether w is a terminal, where a bar redraws in
// place; elsewhere (CI logs, pipes) each update is a line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
