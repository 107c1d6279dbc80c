package control

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// dialed is the RunE of a command with no flag to check before it dials
// Temporal: body gets a Control, closed when body returns.
func (c *CLI) dialed(body func(ctx context.Context, ctl *Control) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		ctl, _, err := c.control(ctx)
		if err != nil {
			return err
		}
		defer ctl.Client.Close()
		return body(ctx, ctl)
	}
}

func (c *CLI) scheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Apply, pause, trigger and describe the hourly pull's schedule (and the clean-up and history schedules); run the compaction or an audit now",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usagef("schedule: want apply, pause, unpause, trigger, compact, audit, describe or backfill-history")
		},
	}
	cmd.AddCommand(c.scheduleApplyCmd(), c.schedulePauseCmd("pause"), c.schedulePauseCmd("unpause"),
		c.scheduleTriggerCmd(), c.scheduleCompactCmd(), c.scheduleAuditCmd(), c.scheduleDescribeCmd(), c.scheduleBackfillHistoryCmd())
	return cmd
}

func verb(created bool) string {
	if created {
		return "created"
	}
	return "updated"
}

// AppliedSchedule is one line of schedule apply.
type AppliedSchedule struct {
	ID     string `json:"id"`
	Action string `json:"action"` // created or updated
	What   string `json:"what"`
}

func (c *CLI) scheduleApplyCmd() *cobra.Command {
	var interval, catchup time.Duration
	var start string
	var paused, historyActive bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create or update the schedules: the pull, the daily staging clean-up and the history export",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The bounds KTPIPE_SCHEDULE_INTERVAL and KTPIPE_CATCHUP_WINDOW
			// have (0: the configured value).
			if interval != 0 && interval < time.Minute || catchup != 0 && catchup < time.Minute {
				return usagef("--interval and --catchup: at least 1m (0: the configured value)")
			}
			if start != "" {
				if _, err := config.ParseSince(start, time.Now()); err != nil {
					return usagef("--start: %v", err)
				}
			}
			ctx := cmd.Context()
			// Every setting read before anything is applied: a bad one
			// changes no schedule (exit 2).
			var m config.Metrics
			if err := c.load(ctx, &m); err != nil {
				return err
			}
			ctl, p, err := c.control(ctx)
			if err != nil {
				return err
			}
			defer ctl.Client.Close()
			spec := ScheduleSpec{Interval: p.ScheduleInterval, CatchupWindow: p.CatchupWindow, Paused: paused,
				Pull: PullInput(p)}
			if interval > 0 {
				spec.Interval = interval
			}
			if catchup > 0 {
				spec.CatchupWindow = catchup
			}
			if start != "" {
				spec.Pull.Start = start
			}
			var out []AppliedSchedule
			created, err := ctl.ApplySchedule(ctx, spec)
			if err != nil {
				return err
			}
			out = append(out, AppliedSchedule{ctl.scheduleID(), verb(created), fmt.Sprintf("pull every %s, overlap skip, catch-up window %s", spec.Interval, spec.CatchupWindow)})
			cs := CleanupSpec{Retention: time.Duration(p.StagingRetention)}
			if created, err = ctl.ApplyCleanupSchedule(ctx, cs); err != nil {
				return err
			}
			out = append(out, AppliedSchedule{ctl.CleanupScheduleID(), verb(created),
				fmt.Sprintf("staging clean-up every %s, removes files older than %s that no open workflow uses", workflows.DefaultCleanupInterval, cs.Retention)})
			hs := HistorySpec{Offset: min(p.LateWindow+time.Hour, 23*time.Hour), Paused: !historyActive,
				Export: workflows.HistoryExportInput{Format: p.ExportFormat, Gzip: p.ExportGzip}}
			if created, err = ctl.ApplyHistorySchedule(ctx, hs); err != nil {
				return err
			}
			state := "paused: serves the UI's Backfill over a date range"
			if historyActive {
				state = "active"
			}
			out = append(out, AppliedSchedule{ctl.HistoryScheduleID(), verb(created),
				fmt.Sprintf("export of the previous UTC day at %s UTC, overlap buffer all (%s)", hs.Offset, state)})
			ops, err := c.applyOpsSchedules(ctx, ctl, p, m, spec.Interval, paused)
			if err != nil {
				return err
			}
			out = append(out, ops...)
			if c.json() {
				return c.printJSON(out)
			}
			for _, a := range out {
				fmt.Fprintf(c.Stdout, "schedule %s %s: %s\n", a.ID, a.Action, a.What)
			}
			if spec.Interval > LagTarget {
				fmt.Fprintf(c.Stdout, "note: a pull every %s alone leaves events up to %s behind, over the guide's %s lag target (alert KtpipeIngestionLag):\n"+
					"      serve webhooks (KTPIPE_WEBHOOK_ADDR) for near-real-time loads, or set KTPIPE_SCHEDULE_INTERVAL to 4m or less (README, Meeting the 5-minute lag target)\n",
					spec.Interval, spec.Interval, LagTarget)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&interval, "interval", 0, "how often the pull runs (default KTPIPE_SCHEDULE_INTERVAL)")
	f.DurationVar(&catchup, "catchup", 0, "how far back missed runs are caught up (default KTPIPE_CATCHUP_WINDOW)")
	f.StringVar(&start, "start", "", "where the very first pull starts: RFC 3339 or relative like 24h (default KTPIPE_PULL_START)")
	f.BoolVar(&paused, "paused", false, "create the pull's schedule paused")
	f.BoolVar(&historyActive, "history-daily", false, "also run the history export every day (otherwise it only serves backfills)")
	return cmd
}

// startedRun reports the run a command started: its id, and with wait
// its result, printed by show (or both as JSON).
func startedRun[R any](ctx context.Context, c *CLI, ctl *Control, what, id string, wait bool, show func(R) error) error {
	return startedRunAs(ctx, c, ctl, what, id, wait, show, func(r R) R { return r })
}

// startedRunAs is startedRun whose JSON result is asJSON's of the
// workflow's.
func startedRunAs[R, J any](ctx context.Context, c *CLI, ctl *Control, what, id string, wait bool, show func(R) error, asJSON func(R) J) error {
	if !c.json() {
		fmt.Fprintf(c.Stdout, "started %s\n", id)
	}
	out := struct {
		WorkflowID string `json:"workflowId"`
		Result     *J     `json:"result,omitempty"`
	}{WorkflowID: id}
	if wait {
		var res R
		wctx, cancel := c.waitCtx(ctx)
		defer cancel()
		if err := ctl.Client.GetWorkflow(wctx, id, "").Get(wctx, &res); err != nil {
			return c.stillRunning(wctx, fmt.Errorf("%s %s: %w", what, id, err))
		}
		j := asJSON(res)
		out.Result = &j
		if !c.json() {
			return show(res)
		}
	}
	if c.json() {
		return c.printJSON(out)
	}
	return nil
}

// PullInput is the scheduled pull's input from the pipeline settings.
func PullInput(p config.Pipeline) workflows.IncrementalPullInput {
	return workflows.IncrementalPullInput{Start: p.PullStart, PageSize: p.PageSize, PagesPerBatch: p.PagesPerBatch,
		BatchesPerRun: p.BatchesPerRun, LateWindow: p.LateWindow, Defer: p.CompactEvery > 0}
}

func (c *CLI) scheduleCompactCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Commit the loads waiting for the compaction now (or follow the compaction running)",
		Args:  cobra.NoArgs,
		RunE: c.dialed(func(ctx context.Context, ctl *Control) error {
			id, err := ctl.TriggerCompaction(ctx)
			if err != nil {
				return err
			}
			return startedRun(ctx, c, ctl, "compaction", id, wait, func(res workflows.CompactResult) error {
				_, err := fmt.Fprintf(c.Stdout, "committed %d loads: %d rows, %d quarantined\n", res.Loads, res.Rows, res.Quarantined)
				return err
			})
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the compaction to finish and print what it committed")
	return cmd
}

func (c *CLI) scheduleAuditCmd() *cobra.Command {
	var wait, recount bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Run an audit now (or follow the one running)",
		Long: `Run the audit schedule's audit now, or follow the one running. With
--recount, start an audit with the schedule's input that takes every count
afresh rather than carry the duplicate and completeness counts of the
day's audit before: after a fix made to the warehouse outside ktpipe. Its
run is not the schedule's, so schedule describe does not list it.`,
		Args: cobra.NoArgs,
		RunE: c.dialed(func(ctx context.Context, ctl *Control) error {
			start := ctl.TriggerAudit
			if recount {
				start = ctl.StartRecount
			}
			id, err := start(ctx)
			if err != nil {
				return err
			}
			// As status shows an audit (snake_case, and whether carried).
			return startedRunAs(ctx, c, ctl, "audit", id, wait, func(row warehouse.AuditRow) error {
				return PrintAudit(c.Stdout, row)
			}, newAuditStatus)
		}),
	}
	cmd.Flags().BoolVar(&recount, "recount", false, "take the duplicate and completeness counts afresh, not carried from the day's audit before")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the audit and print its row")
	return cmd
}

// PrintAudit writes an audit's row as its figures.
func PrintAudit(w io.Writer, row warehouse.AuditRow) error {
	counted := "counted now"
	if row.CountedAt.Before(row.AuditedAt) {
		counted = "carried from the audit of " + row.CountedAt.UTC().Format(time.RFC3339) + ": nothing committed since"
	}
	lag := "unknown (no event on one side)"
	if !row.APINewest.IsZero() {
		lag = fmt.Sprintf("%.0fs", row.IngestionLagSeconds)
	}
	_, err := fmt.Fprintf(w, "audited at %s: lag %s; duplicates %d of %d fact rows (%s); completeness %d of %d API events, %s .. %s; %d schema violations\n",
		row.AuditedAt.UTC().Format(time.RFC3339), lag, row.FactDuplicateRows, row.FactRows, counted, row.WarehouseCount, row.APICount,
		row.CompletenessStart.UTC().Format("01-02 15:04"), row.CompletenessEnd.UTC().Format("01-02 15:04"), row.SchemaViolations)
	return err
}

func (c *CLI) schedulePauseCmd(action string) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   action,
		Short: map[string]string{"pause": "Pause the pull's schedule", "unpause": "Resume the pull's schedule"}[action],
		Args:  cobra.NoArgs,
		RunE: c.dialed(func(ctx context.Context, ctl *Control) error {
			if err := ctl.PauseSchedule(ctx, action == "pause", note); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(map[string]string{"schedule": ctl.scheduleID(), "state": action + "d"})
			}
			fmt.Fprintf(c.Stdout, "schedule %s %sd\n", ctl.scheduleID(), action)
			return nil
		}),
	}
	cmd.Flags().StringVar(&note, "note", "", "note recorded with the change")
	return cmd
}

func (c *CLI) scheduleTriggerCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Start a pull now (or follow the one the schedule is running)",
		Args:  cobra.NoArgs,
		RunE: c.dialed(func(ctx context.Context, ctl *Control) error {
			id, err := ctl.TriggerSchedule(ctx)
			if err != nil {
				return err
			}
			return startedRun(ctx, c, ctl, "pull", id, wait, func(res workflows.IncrementalPullResult) error {
				return printRow(c.Stdout, res)
			})
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the pull to finish and print what it loaded")
	return cmd
}

// ScheduleState is what schedule describe prints.
type ScheduleState struct {
	ID      string    `json:"id"`
	Paused  bool      `json:"paused"`
	Note    string    `json:"note,omitempty"`
	Every   []string  `json:"every"`
	NextRun time.Time `json:"nextRun,omitzero"` // none while paused
	Recent  []string  `json:"recent"`
	Running int       `json:"running"`
}

func scheduleState(id string, d *client.ScheduleDescription) ScheduleState {
	s := ScheduleState{ID: id, Paused: d.Schedule.State.Paused, Note: d.Schedule.State.Note, Running: len(d.Info.RunningWorkflows)}
	if d.Schedule.Spec != nil {
		for _, iv := range d.Schedule.Spec.Intervals {
			s.Every = append(s.Every, iv.Every.String())
		}
	}
	if len(d.Info.NextActionTimes) > 0 && !s.Paused {
		s.NextRun = d.Info.NextActionTimes[0].UTC()
	}
	for _, a := range d.Info.RecentActions {
		if a.StartWorkflowResult != nil {
			s.Recent = append(s.Recent, a.StartWorkflowResult.WorkflowID+" at "+a.ActualTime.UTC().Format(time.RFC3339))
		}
	}
	return s
}

func (c *CLI) scheduleDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Show the pull's schedule: state, interval, next and recent runs",
		Args:  cobra.NoArgs,
		RunE: c.dialed(func(ctx context.Context, ctl *Control) error {
			d, err := ctl.DescribeSchedule(ctx)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(scheduleState(ctl.scheduleID(), d))
			}
			c.printSchedule(ctl.scheduleID(), d)
			return nil
		}),
	}
}

func (c *CLI) scheduleBackfillHistoryCmd() *cobra.Command {
	var since, until string
	cmd := &cobra.Command{
		Use:   "backfill-history",
		Short: "Run the history schedule for each day of a range, as the UI's schedule Backfill does",
		Long: `Run the history schedule for each day of [--since, --until): one HistoryExport
workflow per day, one at a time (overlap buffer all), each exporting the UTC day
before its scheduled time. At most ` + fmt.Sprint(MaxHistoryBackfillDays) + ` days per call.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, u, err := window(since, until, time.Now())
			if err != nil {
				return err
			}
			if days := u.Sub(s) / (24 * time.Hour); days > MaxHistoryBackfillDays {
				return usagef("--since..--until is %d days, more than %d: split the range", days, MaxHistoryBackfillDays)
			}
			ctx := cmd.Context()
			ctl, _, err := c.control(ctx)
			if err != nil {
				return err
			}
			defer ctl.Client.Close()
			if err := ctl.BackfillHistory(ctx, s, u); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(map[string]any{"schedule": ctl.HistoryScheduleID(), "since": s, "until": u})
			}
			fmt.Fprintf(c.Stdout, "schedule %s: backfill %s .. %s requested (one HistoryExport a day, in order)\n",
				ctl.HistoryScheduleID(), s.Format(time.RFC3339), u.Format(time.RFC3339))
			return nil
		},
	}
	addWindowFlags(cmd, &since, &until, "30d")
	return cmd
}

// applyOpsSchedules applies the audit's schedule and the daily
// reconcile's (KTPIPE_AUDIT_INTERVAL, KTPIPE_RECONCILE_INTERVAL; 0 turns
// the reconcile off).
func (c *CLI) applyOpsSchedules(ctx context.Context, ctl *Control, p config.Pipeline, m config.Metrics, pullInterval time.Duration, paused bool) ([]AppliedSchedule, error) {
	audit := workflows.AuditInput{Interval: m.AuditInterval, CompletenessDelay: workflows.CompletenessDelayFor(pullInterval, p.CompactEvery)}
	created, err := ctl.ApplyAuditSchedule(ctx, audit, paused)
	if err != nil {
		return nil, err
	}
	out := []AppliedSchedule{{ctl.AuditScheduleID(), verb(created),
		fmt.Sprintf("audit every %s (lag, duplicates, resends, schema violations, completeness of closed hours)", m.AuditInterval)}}
	if created, err = ctl.ApplyCompactSchedule(ctx, p.CompactEvery, paused); err != nil {
		return nil, err
	}
	what := "compaction of pending loads every %s (no load is deferred: KTPIPE_COMPACT_EVERY is 0)"
	if p.CompactEvery > 0 {
		what = "compaction of the pull's and webhook batches' pending loads every %s"
	}
	out = append(out, AppliedSchedule{ctl.CompactScheduleID(), verb(created), fmt.Sprintf(what, cmp.Or(p.CompactEvery, workflows.DefaultCompactEvery))})
	if m.ReconcileInterval == 0 {
		return out, nil
	}
	// After the late window, so the previous day's late events are in,
	// and after a compaction has committed the day's pending loads.
	offset := min(p.LateWindow+p.CompactEvery+time.Hour, m.ReconcileInterval-time.Minute)
	if created, err = ctl.ApplyReconcileSchedule(ctx, m.ReconcileInterval, offset, paused); err != nil {
		return nil, err
	}
	return append(out, AppliedSchedule{ctl.ReconcileScheduleID(), verb(created),
		fmt.Sprintf("reconcile of the previous UTC day every %s, at %s past midnight UTC", m.ReconcileInterval, offset)}), nil
}

func (c *CLI) printSchedule(id string, d *client.ScheduleDescription) {
	state := "active"
	if d.Schedule.State.Paused {
		state = "paused"
	}
	fmt.Fprintf(c.Stdout, "schedule %s: %s\n", id, state)
	if d.Schedule.Spec != nil {
		for _, iv := range d.Schedule.Spec.Intervals {
			fmt.Fprintf(c.Stdout, "  every %s\n", iv.Every)
		}
	}
	// A paused schedule runs nothing: no next run to show.
	if len(d.Info.NextActionTimes) > 0 && !d.Schedule.State.Paused {
		fmt.Fprintf(c.Stdout, "  next run %s\n", d.Info.NextActionTimes[0].UTC().Format(time.RFC3339))
	}
	for _, a := range d.Info.RecentActions {
		if a.StartWorkflowResult != nil {
			fmt.Fprintf(c.Stdout, "  ran %s at %s\n", a.StartWorkflowResult.WorkflowID, a.ActualTime.UTC().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(c.Stdout, "  running now: %d\n", len(d.Info.RunningWorkflows))
}

// LagTarget is the guide's ingestion-lag target (alert KtpipeIngestionLag).
const LagTarget = 5 * time.Minute
