package control

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/workflows"
)

// finish prints a started run and, with wait, its result.
func (c *CLI) finish(cmd *cobra.Command, run client.WorkflowRun, summary string, wait bool, result any) error {
	out := LoadOutcome{Outcome: "started", WorkflowID: run.GetID(), RunID: run.GetRunID(), Summary: summary}
	if !c.json() {
		fmt.Fprintf(c.Stdout, "started %s (run %s): %s\n", run.GetID(), run.GetRunID(), summary)
	}
	var get func() error
	if wait {
		get = func() error {
			ctx, cancel := c.waitCtx(cmd.Context())
			defer cancel()
			return c.stillRunning(ctx, run.Get(ctx, result))
		}
	}
	return c.printOutcome(out, get, result)
}

func (c *CLI) replayCmd() *cobra.Command {
	var load, since, until, rule string
	var wait, quarantine bool
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Load a failed load again from staging, a window again from the source, or quarantined records that pass now",
		Example: `  ktpipe replay --load-id LOAD_ID --wait
  ktpipe replay --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z
  ktpipe replay --quarantine --rule "gateway_id: must be a known gateway"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if quarantine || rule != "" {
				return c.replayQuarantine(cmd, quarantine, load, rule, since, until, wait)
			}
			in := workflows.ReplayInput{LoadID: load}
			switch {
			case load != "" && (since != "" || until != ""):
				return usagef("replay: give --load-id or --since/--until, not both")
			case load == "":
				s, u, err := window(since, until, time.Now())
				if err != nil {
					return err
				}
				in.Since, in.Until = s, u
			}
			ctx := cmd.Context()
			ctl, _, err := c.control(ctx)
			if err != nil {
				return err
			}
			defer ctl.Client.Close()
			run, err := ctl.StartReplay(ctx, in)
			if err != nil {
				return err
			}
			return c.finish(cmd, run, workflows.ReplaySummary(in), wait, &workflows.ReplayResult{})
		},
	}
	f := cmd.Flags()
	f.StringVar(&load, "load-id", "", "a failed load whose chunks are still staged")
	f.StringVar(&since, "since", "", "or a window to load again from the source: RFC 3339 or relative (24h)")
	f.StringVar(&until, "until", "", "end of that window, RFC 3339")
	f.BoolVar(&wait, "wait", false, "wait for the replay and print its result")
	f.BoolVar(&quarantine, "quarantine", false, "validate quarantined records again and load those that pass now")
	f.StringVar(&rule, "rule", "", "with --quarantine: only records that broke this rule (or \"field: rule\")")
	return cmd
}

// replayQuarantine starts a QuarantineReplay: after fixing what put
// valid events in quarantine (a stale gateway list, a rule since
// corrected), it loads those that pass now.
func (c *CLI) replayQuarantine(cmd *cobra.Command, quarantine bool, load, rule, since, until string, wait bool) error {
	var in workflows.QuarantineReplayInput
	switch {
	case !quarantine:
		return usagef("replay: --rule needs --quarantine")
	case load != "":
		return usagef("replay: give --load-id or --quarantine, not both")
	case since == "" && until != "":
		return usagef("replay --quarantine: --until needs --since")
	case since != "":
		s, u, err := window(since, until, time.Now())
		if err != nil {
			return err
		}
		in.Since, in.Until = s, u
	}
	in.Rule = rule
	ctx := cmd.Context()
	ctl, _, err := c.control(ctx)
	if err != nil {
		return err
	}
	defer ctl.Client.Close()
	run, err := ctl.StartQuarantineReplay(ctx, in)
	if err != nil {
		return err
	}
	return c.finish(cmd, run, "replay of quarantined records", wait, &workflows.QuarantineReplayResult{})
}

func (c *CLI) reconcileCmd() *cobra.Command {
	var since, until string
	var step time.Duration
	var replay, wait bool
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Compare the API's counts with the warehouse per window, and replay windows with a gap",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, u, err := window(since, until, time.Now())
			if err != nil {
				return err
			}
			if step < time.Minute {
				return usagef("--step %s: at least 1m", step)
			}
			if n := (u.Sub(s) + step - 1) / step; n > workflows.MaxReconcileWindows {
				return usagef("--since .. --until by --step %s is %d windows, more than %d in one reconcile: a longer --step or a shorter range", step, n, workflows.MaxReconcileWindows)
			}
			ctx := cmd.Context()
			ctl, _, err := c.control(ctx)
			if err != nil {
				return err
			}
			defer ctl.Client.Close()
			in := workflows.ReconcileInput{Since: s, Until: u, Step: step, ReplayGaps: replay}
			run, err := ctl.StartReconcile(ctx, in)
			if err != nil {
				return err
			}
			if !wait {
				return c.finish(cmd, run, workflows.ReconcileSummary(in), false, nil)
			}
			if !c.json() {
				fmt.Fprintf(c.Stdout, "started %s (run %s): %s\n", run.GetID(), run.GetRunID(), workflows.ReconcileSummary(in))
			}
			var res workflows.ReconcileResult
			wctx, cancel := c.waitCtx(ctx)
			defer cancel()
			if err := run.Get(wctx, &res); err != nil {
				return c.stillRunning(wctx, fmt.Errorf("reconcile %s: %w", run.GetID(), err))
			}
			if c.json() {
				if err := c.printJSON(LoadOutcome{Outcome: "started", WorkflowID: run.GetID(), RunID: run.GetRunID(),
					Summary: workflows.ReconcileSummary(in), Input: in, Result: res}); err != nil {
					return err
				}
			} else {
				PrintReconcile(c.Stdout, res)
			}
			if len(res.Gaps) > 0 && !replay {
				return fmt.Errorf("%d windows have unexplained gaps; run again with --replay-gaps", len(res.Gaps))
			}
			return nil
		},
	}
	f := cmd.Flags()
	addWindowFlags(cmd, &since, &until, "24h")
	f.DurationVar(&step, "step", time.Hour, "window size")
	f.BoolVar(&replay, "replay-gaps", false, "replay windows with an unexplained gap")
	f.BoolVar(&wait, "wait", false, "wait and print the table")
	return cmd
}
