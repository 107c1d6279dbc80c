package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// What the Temporal UI shows of a workflow: its input checked field by
// field, a one-line summary (what window, what source) set by whoever
// starts it, and current details (phase, progress, and for a load the
// load id and the Replay input that retries it) the workflow keeps up to
// date. Current details are served by a built-in query, not recorded as
// commands, so setting them changes nothing a replay compares.

// ExportFormats are the formats the Export API accepts.
var ExportFormats = []string{"ndjson", "json", "csv"}

// inputChecks versions the input checks: they came after workflows had
// run, and refuse some inputs the code before them took (a negative
// parallelism fell back to the default). A run started before them
// replays without them, as it ran.
const inputChecks = "input-checks"

// checkInput runs check, unless this run started before the checks.
func checkInput(ctx workflow.Context, check func() error) error {
	if workflow.GetVersion(ctx, inputChecks, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	return check()
}

func badInput(field, rule string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("input field %q: %s", field, fmt.Sprintf(rule, args...)), payload.ErrTypeBadInput, nil)
}

// checkWindow: since and until are required and since comes first.
func checkWindow(since, until time.Time) error {
	switch {
	case since.IsZero():
		return badInput("since", "required (RFC 3339, e.g. \"2026-11-01T00:00:00Z\")")
	case until.IsZero():
		return badInput("until", "required (RFC 3339, e.g. \"2026-11-02T00:00:00Z\")")
	case !since.Before(until):
		return badInput("until", "%s is not after since %s: the window [since, until) is empty", until.UTC().Format(time.RFC3339), since.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkFormat: empty (the default) or one the Export API accepts.
func checkFormat(format string) error {
	if format != "" && !slices.Contains(ExportFormats, format) {
		return badInput("format", "%q is not one of %s", format, strings.Join(ExportFormats, ", "))
	}
	return nil
}

func (t Tuning) check() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"tuning.pollInterval", t.PollInterval}, {"tuning.maxPollInterval", t.MaxPollInterval},
		{"tuning.heartbeatTimeout", t.HeartbeatTimeout}, {"tuning.warehouseTimeout", t.WarehouseTimeout}} {
		if d.v < 0 {
			return badInput(d.name, "%s is negative", d.v)
		}
	}
	if t.Concurrency < 0 {
		return badInput("tuning.concurrency", "%d is negative", t.Concurrency)
	}
	return nil
}

// Check reports the first field of the input that is wrong.
func (in ExportLoadInput) Check() error {
	if err := checkWindow(in.Since, in.Until); err != nil {
		return err
	}
	if err := checkFormat(in.Format); err != nil {
		return err
	}
	return in.Tuning.check()
}

// Check reports the first field of the input that is wrong.
func (in BackfillInput) Check() error {
	if err := checkWindow(in.Since, in.Until); err != nil {
		return err
	}
	if err := checkFormat(in.Format); err != nil {
		return err
	}
	if in.Window < 0 {
		return badInput("window", "%s is negative", in.Window)
	}
	if in.Parallelism < 0 {
		return badInput("parallelism", "%d is negative", in.Parallelism)
	}
	return in.Tuning.check()
}

// Check reports the first field of the input that is wrong.
func (in ReplayInput) Check() error {
	if in.LoadID == "" {
		if in.Since.IsZero() && in.Until.IsZero() {
			return badInput("loadId", "give a loadId (a failed load whose chunks are staged) or since and until (a window to load again)")
		}
		if err := checkWindow(in.Since, in.Until); err != nil {
			return err
		}
	} else if !in.Since.IsZero() || !in.Until.IsZero() {
		return badInput("loadId", "give a loadId or since and until, not both")
	}
	if err := checkFormat(in.Format); err != nil {
		return err
	}
	return in.Tuning.check()
}

// Check reports the first field of the input that is wrong.
func (in ReconcileInput) Check() error {
	if err := checkWindow(in.Since, in.Until); err != nil {
		return err
	}
	if in.Step < 0 {
		return badInput("step", "%s is negative", in.Step)
	}
	return in.Tuning.check()
}

// span writes a window for a human: "2026-11-01 00:00 → 2026-11-02 00:00 UTC".
func span(since, until time.Time) string {
	const f = "2006-01-02 15:04"
	return since.UTC().Format(f) + " → " + until.UTC().Format(f) + " UTC"
}

// ExportSummary is the one-line summary of an ExportLoad.
func ExportSummary(in ExportLoadInput) string {
	src := in.Source
	if src == "" {
		src = "export"
	}
	format := in.Format
	if format == "" {
		format = "ndjson"
	}
	if in.Gzip {
		format += "+gzip"
	}
	return fmt.Sprintf("%s load %s (%s)", src, span(in.Since, in.Until), format)
}

// BackfillSummary is the one-line summary of a Backfill.
func BackfillSummary(in BackfillInput) string {
	format := in.Format
	if format == "" {
		format = "ndjson"
	}
	if in.Gzip {
		format += "+gzip"
	}
	w := in.Window
	if w <= 0 {
		w = 24 * time.Hour
	}
	return fmt.Sprintf("backfill %s in %s windows (%s)", span(in.Since, in.Until), w, format)
}

// ReplaySummary is the one-line summary of a Replay.
func ReplaySummary(in ReplayInput) string {
	if in.LoadID != "" {
		return "replay of load " + in.LoadID + " from staging"
	}
	return "replay " + span(in.Since, in.Until) + " from the source"
}

// ReconcileSummary is the one-line summary of a Reconcile.
func ReconcileSummary(in ReconcileInput) string {
	step := in.Step
	if step <= 0 {
		step = time.Hour
	}
	return fmt.Sprintf("reconcile %s by %s", span(in.Since, in.Until), step)
}

// ReplayJSON is the Replay input that retries a failed load from its
// staged chunks, as an operator pastes it into Start Workflow.
// (Written by hand, not encoding/json, which workflowcheck cannot prove
// deterministic; load ids are letters, digits, '.', '_' and '-', so %q
// is JSON.)
func ReplayJSON(loadID string) string {
	return fmt.Sprintf(`{"loadId":%q}`, loadID)
}

// replayWindowJSON is the Replay input that loads a window again from
// the source.
func replayWindowJSON(since, until time.Time) string {
	return fmt.Sprintf(`{"since":%q,"until":%q}`, since.UTC().Format(time.RFC3339Nano), until.UTC().Format(time.RFC3339Nano))
}

// details sets the workflow's current details (markdown in the UI): a
// title line, then one line per non-empty part.
func details(ctx workflow.Context, title string, lines ...string) {
	var b strings.Builder
	b.WriteString("**" + title + "**")
	for _, l := range lines {
		if l != "" {
			b.WriteString("\n\n" + l)
		}
	}
	workflow.SetCurrentDetails(ctx, b.String())
}
