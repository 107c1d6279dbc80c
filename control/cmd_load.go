package control

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/workflows"
)

// loadFlags are the flags every loading command takes. A flag given on
// the command line overrides its environment variable, also to turn a
// default off (--gzip=false under KTPIPE_EXPORT_GZIP=true).
type loadFlags struct {
	since, until string
	format       string
	gzip         bool
	reload, wait bool
	cmd          *cobra.Command
}

// addWindowFlags adds the required --since and the optional --until that
// window reads.
func addWindowFlags(cmd *cobra.Command, since, until *string, sinceExample string) {
	cmd.Flags().StringVar(since, "since", "", "required: start, RFC 3339 or relative ("+sinceExample+"); aligned to the hour")
	cmd.Flags().StringVar(until, "until", "", "end (exclusive), RFC 3339; default the next whole hour")
}

func addLoadFlags(cmd *cobra.Command, sinceExample string) *loadFlags {
	lf := &loadFlags{cmd: cmd}
	addWindowFlags(cmd, &lf.since, &lf.until, sinceExample)
	f := cmd.Flags()
	f.StringVar(&lf.format, "format", "", "export format: "+strings.Join(workflows.ExportFormats, ", ")+" (default KTPIPE_EXPORT_FORMAT)")
	f.BoolVar(&lf.gzip, "gzip", false, "ask for a gzip export (default KTPIPE_EXPORT_GZIP)")
	f.BoolVar(&lf.reload, "reload", false, "load again even if a run with the same parameters completed")
	f.BoolVar(&lf.wait, "wait", false, "wait for the load and print its result")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(workflows.ExportFormats, cobra.ShellCompDirectiveNoFileComp))
	return lf
}

// check validates the flags before anything is dialled.
func (lf *loadFlags) check(now time.Time) (time.Time, time.Time, error) {
	if lf.format != "" && !slices.Contains(workflows.ExportFormats, lf.format) {
		return time.Time{}, time.Time{}, usagef("--format %q: want one of %s", lf.format, strings.Join(workflows.ExportFormats, ", "))
	}
	return window(lf.since, lf.until, now)
}

// apply returns the format and gzip to load with: the flags where given,
// else the environment's.
func (lf *loadFlags) apply(p config.Pipeline) (string, bool) {
	format, gz := p.ExportFormat, p.ExportGzip
	if lf.cmd.Flags().Changed("format") {
		format = lf.format
	}
	if lf.cmd.Flags().Changed("gzip") {
		gz = lf.gzip
	}
	return format, gz
}

// LoadOutcome is what a loading command did, printed as its result.
type LoadOutcome struct {
	// Outcome: started (a new run), attached (to the run already going
	// with the same parameters) or already-loaded (a run with the same
	// parameters completed: nothing was started).
	Outcome    string `json:"outcome"`
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	Summary    string `json:"summary"`
	Started    string `json:"started,omitempty"`  // of the earlier run
	Finished   string `json:"finished,omitempty"` // of the earlier run
	Input      any    `json:"input,omitempty"`
	Result     any    `json:"result,omitempty"` // with --wait; an earlier run's is its own
}

// startLoad starts a load under id unless a run with the same id
// completed (then it says so and starts nothing), and prints what it
// did; with wait it follows the run and prints its result.
func (c *CLI) startLoad(ctx context.Context, ctl *Control, lf *loadFlags, id, summary string, in any,
	start func(id string) (client.WorkflowRun, error), result any, follow bool) error {
	if lf.reload {
		id = ReloadID(id, time.Now())
	}
	prior, err := ctl.PriorRun(ctx, id)
	if err != nil {
		return err
	}
	out := LoadOutcome{WorkflowID: id, Summary: summary, Input: in}
	if prior.Done() {
		out.Outcome, out.RunID = "already-loaded", prior.RunID
		out.Started, out.Finished = prior.Start.UTC().Format(time.RFC3339), prior.Close.UTC().Format(time.RFC3339)
		if !c.json() {
			fmt.Fprintf(c.Stdout, "already loaded by %s (run %s, finished %s): %s; nothing started; pass --reload to load again\n",
				id, prior.RunID, out.Finished, summary)
		}
		if lf.wait {
			wctx, cancel := c.waitCtx(ctx)
			defer cancel()
			if err := ctl.Client.GetWorkflow(wctx, id, prior.RunID).Get(wctx, result); err != nil {
				return c.stillRunning(wctx, fmt.Errorf("result of %s: %w", id, err))
			}
			out.Result = result
			if !c.json() {
				fmt.Fprintln(c.Stdout, "result of that earlier run:")
				return printRow(c.Stdout, result)
			}
		}
		if c.json() {
			return c.printJSON(out)
		}
		return nil
	}
	run, err := start(id)
	if err != nil {
		return err
	}
	out.RunID = run.GetRunID()
	out.Outcome = "started"
	if prior != nil && prior.RunID == run.GetRunID() { // the run already going (or that just finished)
		out.Outcome, out.Started = "attached", prior.Start.UTC().Format(time.RFC3339)
	}
	if !c.json() {
		if out.Outcome == "attached" {
			fmt.Fprintf(c.Stdout, "attached to %s (run %s, running since %s): %s\n", id, out.RunID, out.Started, summary)
		} else {
			fmt.Fprintf(c.Stdout, "started %s (run %s): %s\n", id, out.RunID, summary)
		}
	}
	var wait func() error
	if lf.wait {
		wait = func() error {
			wctx, cancel := c.waitCtx(ctx)
			defer cancel()
			if follow {
				return c.stillRunning(wctx, Follow(wctx, ctl.Client, run, c.Stderr, result))
			}
			return c.stillRunning(wctx, run.Get(wctx, result))
		}
	}
	return c.printOutcome(out, wait, result)
}

// printOutcome ends a command that started a run: with wait (not nil) it
// waits for the run's result into result and prints it (the table style)
// or the outcome with it (json); without, json prints the outcome.
func (c *CLI) printOutcome(out LoadOutcome, wait func() error, result any) error {
	if wait != nil {
		if err := wait(); err != nil {
			return fmt.Errorf("%s: %w", out.WorkflowID, err)
		}
		out.Result = result
		if !c.json() {
			return printRow(c.Stdout, result)
		}
	}
	if c.json() {
		return c.printJSON(out)
	}
	return nil
}

func (c *CLI) backfillCmd() *cobra.Command {
	var win time.Duration
	var par int
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Load a range through the Export API, one ExportLoad per window",
		Long: `Load [--since, --until) through the Export API, one ExportLoad child per window.

The workflow id names the range, window, format and gzip: the same backfill run
again attaches to the running one, or, when it completed, says so and starts
nothing (--reload loads again). Another format or window is another backfill.`,
		Args: cobra.NoArgs,
	}
	lf := addLoadFlags(cmd, "30d")
	cmd.Flags().DurationVar(&win, "window", 0, "one export per window (default KTPIPE_BACKFILL_WINDOW)")
	cmd.Flags().IntVar(&par, "parallelism", 0, "windows in flight, 1 to 32 (default KTPIPE_BACKFILL_PARALLELISM)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, u, err := lf.check(time.Now())
		if err != nil {
			return err
		}
		if cmd.Flags().Changed("window") && win < time.Minute {
			return usagef("--window %s: at least 1m", win)
		}
		if cmd.Flags().Changed("parallelism") && (par < 1 || par > 32) {
			return usagef("--parallelism %d: between 1 and 32", par)
		}
		ctx := cmd.Context()
		ctl, p, err := c.control(ctx)
		if err != nil {
			return err
		}
		defer ctl.Client.Close()
		in := workflows.BackfillInput{Since: s, Until: u, Window: p.BackfillWindow, Parallelism: p.BackfillParallelism}
		in.Format, in.Gzip = lf.apply(p)
		if cmd.Flags().Changed("window") {
			in.Window = win
		}
		if cmd.Flags().Changed("parallelism") {
			in.Parallelism = par
		}
		return c.startLoad(ctx, ctl, lf, ctl.BackfillID(in), workflows.BackfillSummary(in), in,
			func(id string) (client.WorkflowRun, error) { return ctl.StartBackfillID(ctx, id, in) },
			&workflows.BackfillResult{}, true)
	}
	return cmd
}

func (c *CLI) exportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Load one window through the Export API",
		Long: `Load [--since, --until) as one export.

The workflow id names the window, format and gzip: the same export run again
attaches to the running one, or, when it completed, says so and starts nothing
(--reload loads again). Another format is another export.`,
		Args: cobra.NoArgs,
	}
	lf := addLoadFlags(cmd, "30d")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, u, err := lf.check(time.Now())
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		ctl, p, err := c.control(ctx)
		if err != nil {
			return err
		}
		defer ctl.Client.Close()
		in := workflows.ExportLoadInput{Since: s, Until: u}
		in.Format, in.Gzip = lf.apply(p)
		return c.startLoad(ctx, ctl, lf, ctl.ExportID(in), workflows.ExportSummary(in), in,
			func(id string) (client.WorkflowRun, error) { return ctl.StartExportID(ctx, id, in) },
			&workflows.ExportLoadResult{}, false)
	}
	return cmd
}

// window reads --since/--until. --since is truncated to its UTC hour and
// the default --until is the next whole hour, so the same command run
// twice within an hour names the same range (and so the same workflow
// id); an explicit --until is taken as given, to the second.
func window(since, until string, now time.Time) (time.Time, time.Time, error) {
	if since == "" {
		return time.Time{}, time.Time{}, usagef("--since is required")
	}
	s, err := config.ParseSince(since, now)
	if err != nil {
		return time.Time{}, time.Time{}, usagef("--since: %v", err)
	}
	u := now.Truncate(time.Hour).Add(time.Hour)
	if until != "" {
		if u, err = time.Parse(time.RFC3339, until); err != nil {
			return time.Time{}, time.Time{}, usagef("--until %q: must be RFC 3339", until)
		}
	}
	s = s.UTC().Truncate(time.Hour)
	if !s.Before(u) {
		return time.Time{}, time.Time{}, usagef("--since %s is not before --until %s", s.Format(time.RFC3339), u.Format(time.RFC3339))
	}
	return s, u.UTC(), nil
}
