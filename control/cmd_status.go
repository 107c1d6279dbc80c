package control

import (
	"context"
	"fmt"
	"time"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
)

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
	var mc config.Metrics // the audit's interval: KtpipeAuditStale waits three
	if err := c.load(ctx, &mc); err != nil {
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
		Interval: p.ScheduleInterval, CompactEvery: p.CompactEvery, AuditInterval: mc.AuditInterval, JSON: *output == "json"}
	ctl := &Control{TaskQueue: t.TaskQueue}
	o.ScheduleID, o.CompactScheduleID = ctl.scheduleID(), ctl.CompactScheduleID()
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
