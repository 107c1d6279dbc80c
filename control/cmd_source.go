package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/keeptrusts"
)

// source is a client of the Keeptrusts API, from the environment.
func (c *CLI) source(ctx context.Context) (*keeptrusts.Client, error) {
	var cfg config.Keeptrusts
	if err := c.load(ctx, &cfg); err != nil {
		return nil, err
	}
	api, err := app.NewKeeptrusts(cfg)
	if err != nil {
		return nil, configError{err}
	}
	return api, nil
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
	api, err := c.source(ctx)
	if err != nil {
		return err
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
	api, err := c.source(ctx)
	if err != nil {
		return err
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

// sourceLister runs `events list` or `exports list` in the chosen output
// style.
func (c *CLI) sourceLister(cmd string) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if len(args) > 0 && args[0] == "list" {
			args = append([]string{"list", "--output", c.output}, args[1:]...)
		}
		return c.sourceList(ctx, cmd, args)
	}
}
