package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// Output styles: every command that prints takes --output.
const (
	OutputTable = "table" // the default: tables and short lines for a person
	OutputJSON  = "json"  // one JSON document, for scripts
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
			if c.output != OutputTable && c.output != OutputJSON {
				return usagef("--output %q: want %s or %s", c.output, OutputTable, OutputJSON)
			}
			c.ran = true
			return nil
		},
	}
	root.PersistentFlags().StringVarP(&c.output, "output", "o", OutputTable, "output style: table or json")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{OutputTable, OutputJSON}, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{cmd.CommandPath() + ": " + err.Error()}
	})
	root.AddCommand(c.scheduleCmd(), c.backfillCmd(), c.exportCmd(), c.replayCmd(), c.reconcileCmd(),
		c.legacy("status", "Show the schedule, running and failed workflows, the checkpoint and the ingestion lag", c.status),
		c.legacy("tail", "Print live events as JSON lines [--decision allow|block|redact|escalate] [--cursor C]", c.tail),
		c.legacy("reports", "Print the standard reports [--limit 20]", c.reports))
	return root
}

// legacy hosts a command whose body parses its own flags with package
// flag (-h lists them); its arguments pass through untouched.
func (c *CLI) legacy(name, short string, run func(context.Context, []string) error) *cobra.Command {
	return &cobra.Command{
		Use: name, Short: short, DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			c.ran = true
			return run(cmd.Context(), args)
		},
	}
}

// json reports whether --output json was asked for.
func (c *CLI) json() bool { return c.output == OutputJSON }

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
