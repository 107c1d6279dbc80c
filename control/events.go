package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ktpipe/ktpipe/keeptrusts"
)

// The data engineer guide's debugging verbs: `kt events list --since 5m
// --limit 1` (is anything arriving?) and `kt export list --format table`
// (did an export job fail?), as `ktpipe events list` and `ktpipe exports
// list`. They read the API only; nothing is started.

// SourceAPI is what the debugging verbs need of the Keeptrusts client.
type SourceAPI interface {
	ListEvents(ctx context.Context, pq keeptrusts.PageQuery) (keeptrusts.Page, error)
	ListExports(ctx context.Context, status string, limit int) ([]keeptrusts.Export, error)
}

// EventsListOptions are `ktpipe events list`'s flags.
type EventsListOptions struct {
	// Since is where the list starts: an RFC 3339 time or a duration back
	// from now as the API takes it (5m, 1h, 30d). Default 5m, the guide's.
	Since string
	// Limit is how many events, 1..10000 (the API's bound). Default 10.
	Limit int
	// Decision keeps one decision (allow, block, redact, escalate); "" all.
	Decision string
	// Output is "table" (default) or "json" (the events as the API sent
	// them, a JSON array).
	Output string
}

var relativeSince = regexp.MustCompile(`^[1-9][0-9]{0,6}[mhd]$`)

// Validate checks the options, naming the flag and the rule it breaks.
func (o *EventsListOptions) Validate() error {
	if o.Since == "" {
		o.Since = "5m"
	}
	if o.Limit == 0 {
		o.Limit = 10
	}
	if o.Output == "" {
		o.Output = outputTable
	}
	if _, err := time.Parse(time.RFC3339, o.Since); err != nil && !relativeSince.MatchString(o.Since) {
		return usagef("--since %q: want an RFC 3339 time or a duration back from now like 5m, 1h, 30d", o.Since)
	}
	if o.Limit < 1 || o.Limit > 10000 {
		return usagef("--limit %d: want 1..10000 (the API's page bound)", o.Limit)
	}
	switch o.Decision {
	case "", "allow", "block", "redact", "escalate":
	default:
		return usagef("--decision %q: want allow, block, redact or escalate", o.Decision)
	}
	return validOutput(o.Output)
}

func validOutput(o string) error {
	if o != outputTable && o != outputJSON {
		return usagef("--output %q: want table or json", o)
	}
	return nil
}

// listedEvent is the part of an event the table shows.
type listedEvent struct {
	ID           string          `json:"id"`
	Timestamp    string          `json:"timestamp"`
	GatewayID    string          `json:"gateway_id"`
	User         string          `json:"user"`
	Provider     string          `json:"provider"`
	Model        string          `json:"model"`
	Decision     string          `json:"decision"`
	InputTokens  json.RawMessage `json:"input_tokens"`
	OutputTokens json.RawMessage `json:"output_tokens"`
	Cost         json.RawMessage `json:"cost"`
}

// ListEvents writes the first events from o.Since, in the API's order
// (ingestion order), one page of at most o.Limit.
func ListEvents(ctx context.Context, api SourceAPI, o EventsListOptions, w io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	page, err := api.ListEvents(ctx, keeptrusts.PageQuery{Window: keeptrusts.Window{Since: o.Since, Decision: o.Decision}, Limit: o.Limit})
	if err != nil {
		return fmt.Errorf("events list: %w", err)
	}
	if o.Output == outputJSON {
		var out bytes.Buffer
		if err := json.Indent(&out, page.Body, "", "  "); err != nil {
			return fmt.Errorf("events list: the API's page is not JSON: %w", err)
		}
		out.WriteByte('\n')
		_, err := w.Write(out.Bytes())
		return err
	}
	// Each event is read on its own, so one the table cannot show (not
	// an object) is named rather than hiding the others.
	var raw []json.RawMessage
	if err := json.Unmarshal(page.Body, &raw); err != nil {
		return fmt.Errorf("events list: the API's page is not a JSON array: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIMESTAMP\tID\tGATEWAY\tUSER\tPROVIDER\tMODEL\tDECISION\tTOKENS IN\tTOKENS OUT\tCOST")
	for i, r := range raw {
		var e listedEvent
		if err := json.Unmarshal(r, &e); err != nil {
			fmt.Fprintf(tw, "(event %d is not an event object: %v)\n", i+1, err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Timestamp, e.ID, e.GatewayID, e.User, e.Provider, e.Model, e.Decision,
			cell(e.InputTokens), cell(e.OutputTokens), cell(e.Cost))
	}
	if len(raw) == 0 {
		fmt.Fprintf(tw, "(no events since %s)\n", o.Since)
	}
	return tw.Flush()
}

// cell shows a JSON number or string as its text, "-" when absent.
func cell(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return "-"
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// ExportsListOptions are `ktpipe exports list`'s flags.
type ExportsListOptions struct {
	// Status keeps one status (queued, running, completed, failed,
	// expired); "" all.
	Status string
	// Limit is how many, newest first, 1..500 (the API's bound). Default 50.
	Limit int
	// Output is "table" (default) or "json".
	Output string
}

// Validate checks the options, naming the flag and the rule it breaks.
func (o *ExportsListOptions) Validate() error {
	if o.Limit == 0 {
		o.Limit = 50
	}
	if o.Output == "" {
		o.Output = outputTable
	}
	switch o.Status {
	case "", "queued", "running", "completed", "failed", "expired":
	default:
		return usagef("--status %q: want queued, running, completed, failed or expired", o.Status)
	}
	if o.Limit < 1 || o.Limit > 500 {
		return usagef("--limit %d: want 1..500 (the API's bound)", o.Limit)
	}
	return validOutput(o.Output)
}

// ListExports writes the API's export jobs, newest first.
func ListExports(ctx context.Context, api SourceAPI, o ExportsListOptions, w io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	exps, err := api.ListExports(ctx, o.Status, o.Limit)
	if err != nil {
		return fmt.Errorf("exports list: %w", err)
	}
	if o.Output == outputJSON {
		if exps == nil {
			exps = []keeptrusts.Export{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(exps)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tFORMAT\tSINCE\tUNTIL\tROWS\tBYTES\tCREATED\tERROR")
	for _, e := range exps {
		format := e.Format
		if e.Compression != "" && e.Compression != "none" {
			format += "+" + e.Compression
		}
		errText := "-"
		if e.Error != nil {
			errText = strings.ReplaceAll(*e.Error, "\n", " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Status, format, rfc(e.Since), rfc(e.Until),
			optInt(e.RowCount), optInt(e.SizeBytes), rfc(e.CreatedAt), errText)
	}
	if len(exps) == 0 {
		fmt.Fprintln(tw, "(no exports)")
	}
	return tw.Flush()
}

func rfc(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func optInt(n *int64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
