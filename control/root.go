package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Output styles: every command that prints takes --output.
const (
	outputTable = "table" // the default: tables and short lines for a person
	outputJSON  = "json"  // one JSON document, for scripts
)

// root builds the command tree. Flags are validated before anything is
// dialled or started: a bad flag is exit 2 with nothing done.
func (c *CLI) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "ktpipe",
		Short: "Steer ktpipe: schedules, backfills, exports, replays, reconciliation, status, tail and reports",
		Long: `ktpipe steers the Keeptrusts → BigQuery pipeline on Temporal.

Configuration comes from the environment (TEMPORAL_ADDRESS, KTPIPE_TASK_QUEUE,
KEEPTRUSTS_*, BIGQUERY_*; see README); a flag given on the command line
overrides its variable. Exit codes: 0 ok, 1 failed, 2 usage (nothing done).`,
		Args:          cobra.NoArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          func(*cobra.Command, []string) error { return usagef("no command") },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if c.output != outputTable && c.output != outputJSON {
				return usagef("--output %q: want %s or %s", c.output, outputTable, outputJSON)
			}
			if c.waitTimeout < time.Second || c.waitTimeout > 30*24*time.Hour {
				return usagef("--wait-timeout %s: between 1s and 720h", c.waitTimeout)
			}
			c.ran = true
			return nil
		},
	}
	root.PersistentFlags().StringVarP(&c.output, "output", "o", outputTable, "output style: table or json")
	root.PersistentFlags().DurationVar(&c.waitTimeout, "wait-timeout", DefaultWaitTimeout, "how long --wait waits for its workflow (1s..720h); past it the command exits 1 and the workflow goes on")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputTable, outputJSON}, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{cmd.CommandPath() + ": " + err.Error()}
	})
	reports := c.legacy("reports", "Print the standard reports [--limit 20] [--html FILE]", false, func(ctx context.Context, args []string) error {
		if c.json() {
			return c.reportsJSON(ctx, args)
		}
		return c.reports(ctx, args)
	})
	reports.Aliases = []string{"report"}
	root.AddCommand(c.scheduleCmd(), c.backfillCmd(), c.exportCmd(), c.replayCmd(), c.reconcileCmd(),
		c.legacy("status", "One screen: health and the alert conditions that hold (exit 0 healthy, 1 alert, 2 cannot tell)", false,
			func(ctx context.Context, args []string) error {
				out := "text" // status's own name for the table style
				if c.json() {
					out = "json"
				}
				return c.status(ctx, append([]string{"--output", out}, args...))
			}),
		c.legacy("tail", "Print live events as JSON lines, in either output style [--decision allow|block|redact|escalate] [--cursor C]", false, c.tail),
		c.legacy("events", "events list [--since 5m|RFC3339] [--limit 10] [--decision D]: the newest events, as the guide's kt events list", false, c.sourceLister("events")),
		c.legacy("exports", "exports list [--status S] [--limit 50]: the exports and their status, as the guide's kt export list", false, c.sourceLister("exports")),
		reports)
	return root
}

// legacy hosts a command whose body parses its own flags with package
// flag (-h lists them). ownsOutput: the body reads --output itself;
// otherwise --output/-o is taken here (c.output) and the rest passes on.
func (c *CLI) legacy(name, short string, ownsOutput bool, run func(context.Context, []string) error) *cobra.Command {
	return &cobra.Command{
		Use: name, Short: short, DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !ownsOutput {
				var err error
				if args, err = c.takeOutput(args); err != nil {
					return err
				}
			}
			c.ran = true
			return run(cmd.Context(), args)
		},
	}
}

// takeOutput removes --output/-o (and its value) from args into c.output.
func (c *CLI) takeOutput(args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--output" || a == "-o" || a == "-output":
			if i+1 == len(args) {
				return nil, usagef("%s needs a value: table or json", a)
			}
			c.output = args[i+1]
			i++
		case strings.HasPrefix(a, "--output=") || strings.HasPrefix(a, "-o="):
			c.output = a[strings.Index(a, "=")+1:]
		default:
			rest = append(rest, a)
		}
	}
	if c.output != outputTable && c.output != outputJSON {
		return nil, usagef("--output %q: want %s or %s", c.output, outputTable, outputJSON)
	}
	return rest, nil
}

// json reports whether --output json was asked for.
func (c *CLI) json() bool { return c.output == outputJSON }

// printJSON writes v as one indented JSON document.
func (c *CLI) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = fmt.Fprintln(c.Stdout, string(b))
	return err
}

// printRow writes a JSON object's top-level fields as a two-line table:
// the field names, then their values (nested values as compact JSON).
func printRow(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	var names, values []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		val := string(raw)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			val = s
		}
		if val == "" || val == "null" {
			val = "-"
		}
		names = append(names, spaced(t.(string)))
		values = append(values, val)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(names, "\t"))
	fmt.Fprintln(tw, strings.Join(values, "\t"))
	return tw.Flush()
}

// spaced turns a camelCase JSON name into words: "loadId" → "load id".
func spaced(name string) string {
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte(' ')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
