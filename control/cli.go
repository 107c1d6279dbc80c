package control

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
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
	// waitTimeout is --wait-timeout: how long a --wait waits for its
	// workflow (which no worker may be running).
	waitTimeout time.Duration
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

// DefaultWaitTimeout bounds a --wait unless --wait-timeout says
// otherwise: a day, longer than a backfill of years at the defaults
// takes, and a bound on a workflow that no worker runs.
const DefaultWaitTimeout = 24 * time.Hour

// waitCtx bounds a --wait by --wait-timeout.
func (c *CLI) waitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, cmp.Or(c.waitTimeout, DefaultWaitTimeout))
}

// stillRunning says a wait that ran out of --wait-timeout did so, and
// that the workflow goes on (err names it).
func (c *CLI) stillRunning(ctx context.Context, err error) error {
	return pastBound(ctx, err, fmt.Sprintf("still running after --wait-timeout %s; the workflow goes on (ktpipe status, or the Temporal UI, shows it)",
		cmp.Or(c.waitTimeout, DefaultWaitTimeout)))
}

// pastBound prefixes err with what, when ctx's deadline (a bound a flag
// set) ended the operation that returned it.
func pastBound(ctx context.Context, err error, what string) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

// lookuper is where the CLI reads its environment: Env, or the
// process's when Env is nil (the binary's).
func (c *CLI) lookuper() envconfig.Lookuper {
	if c.Env == nil {
		return envconfig.OsLookuper()
	}
	return c.Env
}

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
	// A profile file that does not parse, or names no such profile, is
	// configuration (exit 2), not a failure to reach Temporal.
	if _, err := app.TemporalOptions(t); err != nil {
		return nil, p, configError{err}
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

// exitCode ends the CLI with a code and no message: the command printed
// its own account (status).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }
