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

	"github.com/ktpipe/ktpipe/app"
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

// CLI is the starter command's state.
type CLI struct {
	Env    envconfig.Lookuper
	Stdout io.Writer
	Stderr io.Writer
	// Dial connects to Temporal; tests and the local stack replace it.
	Dial func(config.Temporal) (client.Client, error)

	output string // --output, for the command being run
	ran    bool   // flags parsed: an error from here on is the command's
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Run executes one command and returns the process exit code.
func (c *CLI) Run(ctx context.Context, args []string) int {
	c.output, c.ran = outputTable, false
	root := c.root()
	root.SetArgs(args)
	root.SetOut(c.Stdout)
	root.SetErr(c.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	var ue usageError
	var ce configError
	var ec exitCode
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ec): // a command's own verdict (status: 1 alert, 2 cannot tell)
		return int(ec)
	case errors.As(err, &ue) || !c.ran || errors.Is(err, flag.ErrHelp):
		// Refused before anything was dialled or started.
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(c.Stderr, "ktpipe:", err)
		}
		fmt.Fprint(c.Stderr, cmd.UsageString())
		return ExitUsage
	case errors.As(err, &ce):
		fmt.Fprintln(c.Stderr, "ktpipe:", err)
		return ExitUsage
	default:
		fmt.Fprintln(c.Stderr, "ktpipe:", err)
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
	// Where Dial connects (a profile file may say); a configuration
	// Dial cannot use is its error below.
	topts, _ := app.TemporalOptions(t)
	o := StatusOptions{TaskQueue: t.TaskQueue, Namespace: topts.Namespace, UIURL: TemporalUIURL(t.UIURL, topts.HostPort),
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

// maxReportRows bounds --limit: rows per report a terminal can show.
const maxReportRows = 10000

// reportFlags parses reports' flags, for both output styles.
func (c *CLI) reportFlags(args []string) (limit int, html string, err error) {
	fs := c.flags("reports")
	l := fs.Int("limit", 20, "rows per report (1..10000)")
	h := fs.String("html", "", "also write the reports, data quality and success metrics, with charts, as one HTML page to this file")
	if err := parse(fs, args); err != nil {
		return 0, "", err
	}
	if *l < 1 || *l > maxReportRows {
		return 0, "", usagef("--limit %d: between 1 and %d", *l, maxReportRows)
	}
	return *l, *h, nil
}

func (c *CLI) reports(ctx context.Context, args []string) error {
	limit, html, err := c.reportFlags(args)
	if err != nil {
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
	err = wh.PrintViews(ctx, c.Stdout, warehouse.PrintedViews(userMap != ""), limit)
	if html != "" {
		wrote, herr := report.WriteFile(ctx, wh, report.Options{Dataset: cfg.Dataset, TableRows: limit}, html)
		if wrote {
			fmt.Fprintf(c.Stdout, "\nwrote %s\n", html)
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
	output := fs.String("output", outputTable, "table or json")
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
	api, err := app.NewKeeptrusts(cfg)
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
	api, err := app.NewKeeptrusts(cfg)
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

// LagTarget is the guide's ingestion-lag target (alert KtpipeIngestionLag).
const LagTarget = 5 * time.Minute
