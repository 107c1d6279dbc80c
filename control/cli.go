package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/report"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// Exit codes of the CLI, for scripts.
const (
	ExitOK     = 0 // done (or started, without --wait)
	ExitFailed = 1 // the operation failed: a workflow failed, an API refused
	ExitUsage  = 2 // bad arguments or configuration; nothing was done
)

const usage = `usage: ktpipe <command> [flags]

Commands:
  schedule apply [--interval 1h] [--catchup 24h] [--start 24h] [--paused]
                 (also applies the daily staging clean-up schedule)
  schedule pause|unpause [--note TEXT]
  schedule trigger [--wait]
  schedule describe
  backfill --since 30d|RFC3339 [--until RFC3339] [--window 24h] [--parallelism N] [--format F] [--wait]
  export   --since 30d|RFC3339 [--until RFC3339] [--format ndjson|json|csv] [--gzip] [--wait]
  replay   (--load-id ID | --since T --until T) [--wait]
  replay   --quarantine [--rule R] [--since T --until T] [--wait]
  reconcile --since 24h|RFC3339 [--until RFC3339] [--step 1h] [--replay-gaps] [--wait]
  status   [--output text|json]   (exit 0 healthy, 1 an alert condition holds, 2 cannot tell)
  tail     [--decision allow|block|redact|escalate] [--cursor C]
  reports  [--limit 20] [--html FILE]   (FILE: one self-contained page with charts)
  events list  [--since 5m|RFC3339] [--limit 10] [--decision D] [--output table|json]
  exports list [--status S] [--limit 50] [--output table|json]

Configuration comes from the environment (TEMPORAL_ADDRESS, KTPIPE_TASK_QUEUE,
KEEPTRUSTS_*, BIGQUERY_*; see README). Exit codes: 0 ok, 1 failed, 2 usage.
`

// CLI is the starter command's state.
type CLI struct {
	Env    envconfig.Lookuper
	Stdout io.Writer
	Stderr io.Writer
	// Dial connects to Temporal; tests and the local stack replace it.
	Dial func(config.Temporal) (client.Client, error)
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Run executes one command and returns the process exit code.
func (c *CLI) Run(ctx context.Context, args []string) int {
	err := c.run(ctx, args)
	var ue usageError
	var ec exitCode
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ec):
		return int(ec)
	case errors.As(err, &ue) || errors.Is(err, flag.ErrHelp):
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(c.Stderr, "ktpipe:", err)
		}
		fmt.Fprint(c.Stderr, usage)
		return ExitUsage
	default:
		fmt.Fprintln(c.Stderr, "ktpipe:", err)
		var ce configError
		if errors.As(err, &ce) {
			return ExitUsage
		}
		return ExitFailed
	}
}

type configError struct{ err error }

func (e configError) Error() string { return "configuration: " + e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func (c *CLI) load(ctx context.Context, target any) error {
	if err := config.Load(ctx, target, c.Env); err != nil {
		return configError{err}
	}
	return nil
}

func (c *CLI) control(ctx context.Context) (*Control, config.Pipeline, error) {
	var t config.Temporal
	var p config.Pipeline
	if err := c.load(ctx, &t); err != nil {
		return nil, p, err
	}
	if err := c.load(ctx, &p); err != nil {
		return nil, p, err
	}
	cl, err := c.Dial(t)
	if err != nil {
		return nil, p, err
	}
	return &Control{Client: cl, TaskQueue: t.TaskQueue, Tuning: workflows.Tuning{Concurrency: p.Concurrency}}, p, nil
}

func (c *CLI) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "schedule":
		return c.schedule(ctx, rest)
	case "backfill":
		return c.backfill(ctx, rest)
	case "export":
		return c.export(ctx, rest)
	case "replay":
		return c.replay(ctx, rest)
	case "reconcile":
		return c.reconcile(ctx, rest)
	case "status":
		return c.status(ctx, rest)
	case "tail":
		return c.tail(ctx, rest)
	case "reports", "report":
		return c.reports(ctx, rest)
	case "events", "exports":
		return c.sourceList(ctx, cmd, rest)
	case "help", "-h", "--help":
		return flag.ErrHelp
	}
	return usagef("unknown command %q", cmd)
}

func (c *CLI) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// windowFlags adds --since and --until to fs and returns their reader.
func windowFlags(fs *flag.FlagSet, example string) func() (time.Time, time.Time, error) {
	since := fs.String("since", "", "start: RFC 3339 or relative ("+example+")")
	until := fs.String("until", "", "end (exclusive), RFC 3339; default the next whole hour")
	return func() (time.Time, time.Time, error) { return window(*since, *until, time.Now()) }
}

// window reads --since/--until, aligned to whole hours so the same
// command run twice within an hour names the same range (and so the same
// workflow id).
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

func (c *CLI) schedule(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("schedule: want apply, pause, unpause, trigger or describe")
	}
	sub, rest := args[0], args[1:]
	fs := c.flags("schedule " + sub)
	interval := fs.Duration("interval", 0, "how often the pull runs (default KTPIPE_SCHEDULE_INTERVAL)")
	catchup := fs.Duration("catchup", 0, "how far back missed runs are caught up (default KTPIPE_CATCHUP_WINDOW)")
	start := fs.String("start", "", "where the very first pull starts (default KTPIPE_PULL_START)")
	paused := fs.Bool("paused", false, "create the schedule paused")
	note := fs.String("note", "", "note recorded with pause/unpause")
	wait := fs.Bool("wait", false, "wait for the triggered pull to finish")
	if err := parse(fs, rest); err != nil {
		return err
	}
	ctl, p, err := c.control(ctx)
	if err != nil {
		return err
	}
	defer ctl.Client.Close()
	switch sub {
	case "apply":
		spec := ScheduleSpec{Interval: p.ScheduleInterval, CatchupWindow: p.CatchupWindow, Paused: *paused,
			Pull: workflows.IncrementalPullInput{Start: p.PullStart, PageSize: p.PageSize, PagesPerBatch: p.PagesPerBatch,
				BatchesPerRun: p.BatchesPerRun, LateWindow: p.LateWindow}}
		if *interval > 0 {
			spec.Interval = *interval
		}
		if *catchup > 0 {
			spec.CatchupWindow = *catchup
		}
		if *start != "" {
			if _, err := config.ParseSince(*start, time.Now()); err != nil {
				return usagef("--start: %v", err)
			}
			spec.Pull.Start = *start
		}
		created, err := ctl.ApplySchedule(ctx, spec)
		if err != nil {
			return err
		}
		verb := "updated"
		if created {
			verb = "created"
		}
		fmt.Fprintf(c.Stdout, "schedule %s %s: every %s, overlap skip, catch-up window %s\n", ctl.scheduleID(), verb, spec.Interval, spec.CatchupWindow)
		cs := CleanupSpec{Retention: time.Duration(p.StagingRetention)}
		if created, err = ctl.ApplyCleanupSchedule(ctx, cs); err != nil {
			return err
		}
		verb = "updated"
		if created {
			verb = "created"
		}
		fmt.Fprintf(c.Stdout, "schedule %s %s: staging clean-up every %s, removes files older than %s that no open workflow uses\n",
			ctl.CleanupScheduleID(), verb, workflows.DefaultCleanupInterval, cs.Retention)
	case "pause", "unpause":
		if err := ctl.PauseSchedule(ctx, sub == "pause", *note); err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "schedule %s %sd\n", ctl.scheduleID(), sub)
	case "trigger":
		id, err := ctl.TriggerSchedule(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "started %s\n", id)
		if *wait {
			var res workflows.IncrementalPullResult
			if err := ctl.Client.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
				return fmt.Errorf("pull %s: %w", id, err)
			}
			fmt.Fprintf(c.Stdout, "pulled %d batches: %d rows, %d quarantined\n", res.Batches, res.Rows, res.Quarantined)
		}
	case "describe":
		d, err := ctl.DescribeSchedule(ctx)
		if err != nil {
			return err
		}
		c.printSchedule(ctl.scheduleID(), d)
	default:
		return usagef("schedule: unknown subcommand %q", sub)
	}
	return nil
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
	for _, t := range d.Info.NextActionTimes {
		fmt.Fprintf(c.Stdout, "  next run %s\n", t.UTC().Format(time.RFC3339))
		break
	}
	for _, a := range d.Info.RecentActions {
		if a.StartWorkflowResult != nil {
			fmt.Fprintf(c.Stdout, "  ran %s at %s\n", a.StartWorkflowResult.WorkflowID, a.ActualTime.UTC().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(c.Stdout, "  running now: %d\n", len(d.Info.RunningWorkflows))
}

// finish waits for a run when asked and prints its result as JSON.
func (c *CLI) finish(ctx context.Context, ctl *Control, run client.WorkflowRun, wait bool, out any) error {
	fmt.Fprintf(c.Stdout, "workflow %s (run %s)\n", run.GetID(), run.GetRunID())
	if !wait {
		return nil
	}
	if err := run.Get(ctx, out); err != nil {
		return fmt.Errorf("workflow %s: %w", run.GetID(), err)
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintln(c.Stdout, string(b))
	return nil
}

func (c *CLI) backfill(ctx context.Context, args []string) error {
	fs := c.flags("backfill")
	readWindow := windowFlags(fs, "30d")
	win := fs.Duration("window", 0, "one export per window (default KTPIPE_BACKFILL_WINDOW)")
	par := fs.Int("parallelism", 0, "windows in flight (default KTPIPE_BACKFILL_PARALLELISM)")
	format := fs.String("format", "", "export format (default KTPIPE_EXPORT_FORMAT)")
	wait := fs.Bool("wait", false, "wait, with a progress bar")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, u, err := readWindow()
	if err != nil {
		return err
	}
	ctl, p, err := c.control(ctx)
	if err != nil {
		return err
	}
	defer ctl.Client.Close()
	in := workflows.BackfillInput{Since: s, Until: u, Window: p.BackfillWindow, Parallelism: p.BackfillParallelism, Format: p.ExportFormat, Gzip: p.ExportGzip}
	if *win > 0 {
		in.Window = *win
	}
	if *par > 0 {
		in.Parallelism = *par
	}
	if *format != "" {
		in.Format = *format
	}
	run, err := ctl.StartBackfill(ctx, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "backfill %s .. %s: workflow %s\n", s.Format(time.RFC3339), u.Format(time.RFC3339), run.GetID())
	if !*wait {
		return nil
	}
	var res workflows.BackfillResult
	if err := Follow(ctx, ctl.Client, run, c.Stderr, &res); err != nil {
		return fmt.Errorf("backfill %s: %w", run.GetID(), err)
	}
	fmt.Fprintf(c.Stdout, "backfilled %d windows (%d loaded, %d already done): %d rows, %d quarantined\n", res.Windows, res.Loaded, res.Skipped, res.Rows, res.Quarantined)
	return nil
}

func (c *CLI) export(ctx context.Context, args []string) error {
	fs := c.flags("export")
	readWindow := windowFlags(fs, "30d")
	format := fs.String("format", "", "json, ndjson or csv (default KTPIPE_EXPORT_FORMAT)")
	gz := fs.Bool("gzip", false, "ask for a gzip export")
	wait := fs.Bool("wait", false, "wait for the load")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, u, err := readWindow()
	if err != nil {
		return err
	}
	ctl, p, err := c.control(ctx)
	if err != nil {
		return err
	}
	defer ctl.Client.Close()
	in := workflows.ExportLoadInput{Since: s, Until: u, Format: p.ExportFormat, Gzip: p.ExportGzip || *gz}
	if *format != "" {
		in.Format = *format
	}
	run, err := ctl.StartExport(ctx, in)
	if err != nil {
		return err
	}
	return c.finish(ctx, ctl, run, *wait, &workflows.ExportLoadResult{})
}

func (c *CLI) replay(ctx context.Context, args []string) error {
	fs := c.flags("replay")
	load := fs.String("load-id", "", "a failed load whose chunks are still staged")
	since := fs.String("since", "", "or a window to load again from the source")
	until := fs.String("until", "", "end of that window, RFC 3339")
	wait := fs.Bool("wait", false, "wait for the replay")
	quarantine := fs.Bool("quarantine", false, "validate quarantined records again and load those that pass now")
	rule := fs.String("rule", "", "with --quarantine: only records that broke this rule (or \"field: rule\")")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *quarantine || *rule != "" {
		return c.replayQuarantine(ctx, *quarantine, *load, *rule, *since, *until, *wait)
	}
	in := workflows.ReplayInput{LoadID: *load}
	switch {
	case *load != "" && *since != "":
		return usagef("replay: give --load-id or --since, not both")
	case *load == "":
		s, u, err := window(*since, *until, time.Now())
		if err != nil {
			return err
		}
		in.Since, in.Until = s, u
	}
	ctl, _, err := c.control(ctx)
	if err != nil {
		return err
	}
	defer ctl.Client.Close()
	run, err := ctl.StartReplay(ctx, in)
	if err != nil {
		return err
	}
	return c.finish(ctx, ctl, run, *wait, &workflows.ReplayResult{})
}

// replayQuarantine starts a QuarantineReplay: after fixing what put
// valid events in quarantine (a stale gateway list, a rule since
// corrected), it loads those that pass now.
func (c *CLI) replayQuarantine(ctx context.Context, quarantine bool, load, rule, since, until string, wait bool) error {
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
	ctl, _, err := c.control(ctx)
	if err != nil {
		return err
	}
	defer ctl.Client.Close()
	run, err := ctl.StartQuarantineReplay(ctx, in)
	if err != nil {
		return err
	}
	return c.finish(ctx, ctl, run, wait, &workflows.QuarantineReplayResult{})
}

func (c *CLI) reconcile(ctx context.Context, args []string) error {
	fs := c.flags("reconcile")
	readWindow := windowFlags(fs, "24h")
	step := fs.Duration("step", time.Hour, "window size")
	replay := fs.Bool("replay-gaps", false, "replay windows with an unexplained gap")
	wait := fs.Bool("wait", false, "wait and print the table")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, u, err := readWindow()
	if err != nil {
		return err
	}
	ctl, _, err := c.control(ctx)
	if err != nil {
		return err
	}
	defer ctl.Client.Close()
	run, err := ctl.StartReconcile(ctx, workflows.ReconcileInput{Since: s, Until: u, Step: *step, ReplayGaps: *replay})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "workflow %s\n", run.GetID())
	if !*wait {
		return nil
	}
	var res workflows.ReconcileResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	PrintReconcile(c.Stdout, res)
	if len(res.Gaps) > 0 && !*replay {
		return fmt.Errorf("%d windows have unexplained gaps; run again with --replay-gaps", len(res.Gaps))
	}
	return nil
}

func (c *CLI) status(ctx context.Context, args []string) error {
	fs := c.flags("status")
	output := fs.String("output", "text", "text or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return usagef("status: --output %q: want text or json", *output)
	}
	var t config.Temporal
	var p config.Pipeline
	if err := c.load(ctx, &t); err != nil {
		return err
	}
	if err := c.load(ctx, &p); err != nil {
		return err
	}
	// Every read is bounded, so an unreachable service is "cannot tell"
	// (exit 2) within a minute, not a hang.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	o := StatusOptions{TaskQueue: t.TaskQueue, Namespace: t.Namespace, UIURL: TemporalUIURL(t.UIURL, t.Address),
		Interval: p.ScheduleInterval, JSON: *output == "json"}
	ctl := &Control{TaskQueue: t.TaskQueue}
	o.ScheduleID = ctl.scheduleID()
	if cl, err := c.Dial(t); err != nil {
		o.TemporalErr = err
	} else {
		defer cl.Close()
		ctl.Client = cl
		o.Temporal = ctl
	}
	var bqCfg config.BigQuery
	if err := config.Load(ctx, &bqCfg, c.Env); err != nil {
		o.WarehouseErr = fmt.Errorf("not configured: %w", err)
	} else if wh, closeFn, err := c.warehouse(ctx, bqCfg); err != nil {
		o.WarehouseErr = err
	} else {
		defer closeFn()
		o.Warehouse = wh
	}
	if code := Status(ctx, o, c.Stdout); code != ExitOK {
		return exitCode(code)
	}
	return nil
}

// exitCode ends the CLI with a code and no message: the command printed
// its own account (status).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

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

func (c *CLI) reports(ctx context.Context, args []string) error {
	fs := c.flags("reports")
	limit := fs.Int("limit", 20, "rows per report")
	html := fs.String("html", "", "also write the reports, data quality and success metrics, with charts, as one HTML page to this file")
	if err := parse(fs, args); err != nil {
		return err
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
	// Every report that can be read is printed; the error (exit 1)
	// names the ones that could not.
	userMap, _ := c.Env.Lookup("KTPIPE_USER_MAP")
	err = wh.PrintViews(ctx, c.Stdout, warehouse.PrintedViews(userMap != ""), *limit)
	if *html != "" {
		wrote, herr := report.WriteFile(ctx, wh, report.Options{Dataset: cfg.Dataset, TableRows: *limit}, *html)
		if wrote {
			fmt.Fprintf(c.Stdout, "\nwrote %s\n", *html)
		}
		err = errors.Join(err, herr)
	}
	return err
}

// sourceList is the glue of `events list` and `exports list` (events.go).
func (c *CLI) sourceList(ctx context.Context, cmd string, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return usagef("%s: want list", cmd)
	}
	fs := c.flags(cmd + " list")
	limit := fs.Int("limit", 0, "how many")
	output := fs.String("output", OutputTable, "table or json")
	since := fs.String("since", "5m", "events from: RFC 3339 or relative (5m, 1h, 30d)")
	decision := fs.String("decision", "", "events of one decision")
	status := fs.String("status", "", "exports of one status")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	var run func(SourceAPI) error
	if cmd == "events" {
		o := EventsListOptions{Since: *since, Limit: *limit, Decision: *decision, Output: *output}
		if *status != "" {
			return usagef("events list: --status is a flag of exports list")
		}
		if err := o.Validate(); err != nil {
			return err
		}
		run = func(api SourceAPI) error { return ListEvents(ctx, api, o, c.Stdout) }
	} else {
		o := ExportsListOptions{Status: *status, Limit: *limit, Output: *output}
		if *decision != "" || *since != "5m" {
			return usagef("exports list: --since and --decision are flags of events list")
		}
		if err := o.Validate(); err != nil {
			return err
		}
		run = func(api SourceAPI) error { return ListExports(ctx, api, o, c.Stdout) }
	}
	var cfg config.Keeptrusts
	if err := c.load(ctx, &cfg); err != nil {
		return err
	}
	api, err := keeptrusts.New(cfg.BaseURL, cfg.Token, cfg.ClientOptions()...)
	if err != nil {
		return configError{err}
	}
	return run(api)
}

func (c *CLI) tail(ctx context.Context, args []string) error {
	fs := c.flags("tail")
	decision := fs.String("decision", "", "only this decision")
	cursor := fs.String("cursor", "", "resume after this cursor")
	if err := parse(fs, args); err != nil {
		return err
	}
	var cfg config.Keeptrusts
	if err := c.load(ctx, &cfg); err != nil {
		return err
	}
	api, err := keeptrusts.New(cfg.BaseURL, cfg.Token, cfg.ClientOptions()...)
	if err != nil {
		return configError{err}
	}
	slog.Debug("tailing", "decision", *decision)
	opts := keeptrusts.TailOptions{Cursor: *cursor, Decision: *decision,
		OnReconnect: func(wait time.Duration, cursor string, cause error) {
			slog.Debug("tail reconnecting", "wait", wait, "cursor", cursor, "cause", cause)
		}}
	var line bytes.Buffer
	err = api.Tail(ctx, opts, func(m keeptrusts.TailMessage) error {
		// One compact JSON object per line, however the server spread the
		// event over data: lines, so the output is JSON lines.
		line.Reset()
		if err := json.Compact(&line, m.Data); err != nil || line.Len() == 0 || line.Bytes()[0] != '{' {
			fmt.Fprintf(c.Stderr, "ktpipe tail: skipped an event that is not a JSON object (cursor %q)\n", m.Cursor)
			return nil
		}
		line.WriteByte('\n')
		_, err := c.Stdout.Write(line.Bytes())
		return err
	})
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C
	}
	return err
}
