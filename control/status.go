package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// The guide's alert thresholds (helpers' OPS contract), the same the
// Prometheus rules use, so status and the alerts agree.
const (
	MaxLagSeconds       = 300   // ingestion lag: API newest vs warehouse newest
	MaxDuplicateRatio   = 0.001 // fact rows beyond the first per event id
	MinCompleteness     = 0.999 // (fact + quarantine) / API count
	StallGrace          = 10 * time.Minute
	RecentWindow        = 24 * time.Hour // failed workflows and quarantine listed (information)
	FailedWindow        = time.Hour      // KtpipeWorkflowFailed, KtpipeExportFailed: a failure this recent alerts
	statusWorkflowLimit = 20             // workflows listed per state; the UI has the rest
)

// Status health, also the process exit code.
const (
	StatusHealthy = 0 // every condition checked, none holds
	StatusAlert   = 1 // at least one alert condition holds
	StatusUnknown = 2 // no condition holds, but something could not be read
)

// StatusTemporal is what status reads from Temporal (*Control).
type StatusTemporal interface {
	DescribeSchedule(ctx context.Context) (*client.ScheduleDescription, error)
	DescribeCompactSchedule(ctx context.Context) (*client.ScheduleDescription, error)
	RecentWorkflows(ctx context.Context, status string, closedAfter time.Time, limit int) ([]WorkflowSummary, error)
	WorkerPollers(ctx context.Context) (int, error)
	LastReconcile(ctx context.Context) (*ReconcileStatus, error)
}

// StatusWarehouse is what status reads from BigQuery (*warehouse.Warehouse).
type StatusWarehouse interface {
	Checkpoint(ctx context.Context, key string) (string, error)
	CheckpointTime(ctx context.Context, key string) (time.Time, error)
	AuditHistory(ctx context.Context, since time.Time, limit int) ([]warehouse.AuditRow, error)
	QuarantineSince(ctx context.Context, since time.Time) ([]warehouse.ViolationCount, error)
}

// StatusOptions is one `ktpipe status`. A nil Temporal or Warehouse is a
// source that could not be reached or is not configured; its Err says why.
type StatusOptions struct {
	Temporal     StatusTemporal
	TemporalErr  error
	Warehouse    StatusWarehouse
	WarehouseErr error
	ScheduleID   string
	TaskQueue    string
	Namespace    string
	UIURL        string        // Temporal UI base, e.g. http://127.0.0.1:8233
	Interval     time.Duration // the pull's interval when the schedule does not say (KTPIPE_SCHEDULE_INTERVAL)
	// CompactEvery is KTPIPE_COMPACT_EVERY: when set, loads wait for the
	// compaction, and its schedule (CompactScheduleID) must exist and run
	// (0: not checked).
	CompactEvery      time.Duration
	CompactScheduleID string
	// AuditInterval is KTPIPE_AUDIT_INTERVAL (0: the default 5 minutes):
	// KtpipeAuditStale waits three of them.
	AuditInterval time.Duration
	CheckpointKey string
	JSON          bool
	Now           time.Time // zero: time.Now()
}

// StatusReport is what status found; --output json prints it.
type StatusReport struct {
	Health        string           `json:"health"` // healthy, alert, unknown
	ExitCode      int              `json:"exit_code"`
	At            time.Time        `json:"at"`
	Schedule      *ScheduleStatus  `json:"schedule,omitempty"`
	Compaction    *ScheduleStatus  `json:"compaction,omitempty"` // only with CompactEvery set
	WorkerPollers *int             `json:"worker_pollers,omitempty"`
	Running       []WorkflowLink   `json:"running"`
	Failed        []WorkflowLink   `json:"failed_24h"`
	Checkpoint    *CheckpointState `json:"checkpoint,omitempty"`
	Audit         *AuditStatus     `json:"audit,omitempty"`
	LastReconcile *ReconcileStatus `json:"last_reconcile,omitempty"`
	Quarantine24h *QuarantineState `json:"quarantine_24h,omitempty"`
	Alerts        []Alert          `json:"alerts"`
	Unknown       []string         `json:"unknown"` // what could not be read, and why
}

// ScheduleStatus is the pull schedule's state.
type ScheduleStatus struct {
	ID      string     `json:"id"`
	State   string     `json:"state"` // active, paused, missing
	Note    string     `json:"note,omitempty"`
	Every   string     `json:"every,omitempty"`
	NextRun *time.Time `json:"next_run,omitempty"` // never under a paused schedule
}

// WorkflowLink is one workflow with its page in the Temporal UI.
type WorkflowLink struct {
	Type    string     `json:"type"`
	ID      string     `json:"id"`
	RunID   string     `json:"run_id"`
	Start   time.Time  `json:"start"`
	Close   *time.Time `json:"close,omitempty"`
	URL     string     `json:"url"`
	Failure string     `json:"-"`
}

// CheckpointState is the pull's checkpoint.
type CheckpointState struct {
	Key        string    `json:"key"`
	Cursor     string    `json:"cursor"`
	WrittenAt  time.Time `json:"written_at"`
	AgeSeconds float64   `json:"age_seconds"`
}

// AuditStatus is the latest audit's figures.
type AuditStatus struct {
	AuditedAt          time.Time `json:"audited_at"`
	LagSeconds         *float64  `json:"lag_seconds"`
	APINewest          time.Time `json:"api_newest"`
	WarehouseNewest    time.Time `json:"warehouse_newest"`
	FactDuplicateRatio float64   `json:"fact_duplicate_ratio"`
	SchemaViolations   int64     `json:"schema_violations"`
	CompletenessRatio  float64   `json:"completeness_ratio"`
	CompletenessStart  time.Time `json:"completeness_start"`
	CompletenessEnd    time.Time `json:"completeness_end"`
	APICount           int64     `json:"api_count"`
	WarehouseCount     int64     `json:"warehouse_count"`
	// CountedAt is when the duplicates were taken: before AuditedAt
	// when the audit carried them (Carried: nothing committed since on
	// that day; the completeness count is summed from hours counted with
	// them, or later); zero from an audit that did not say.
	CountedAt time.Time `json:"counted_at,omitzero"`
	Carried   bool      `json:"carried"`
}

// newAuditStatus is an audit row as status shows it.
func newAuditStatus(a warehouse.AuditRow) *AuditStatus {
	s := &AuditStatus{AuditedAt: a.AuditedAt.UTC(), APINewest: a.APINewest, WarehouseNewest: a.WarehouseNewest,
		FactDuplicateRatio: a.FactDuplicateRatio, SchemaViolations: a.SchemaViolations, CompletenessRatio: a.CompletenessRatio,
		CompletenessStart: a.CompletenessStart, CompletenessEnd: a.CompletenessEnd, APICount: a.APICount, WarehouseCount: a.WarehouseCount,
		CountedAt: a.CountedAt.UTC(), Carried: !a.CountedAt.IsZero() && a.CountedAt.Before(a.AuditedAt)}
	// Known when the API reported an event (a row read back says so; a
	// workflow's result has the API's newest).
	if a.LagKnown || !a.APINewest.IsZero() {
		lag := a.IngestionLagSeconds
		s.LagSeconds = &lag
	}
	return s
}

// ReconcileStatus is the last completed Reconcile's totals.
type ReconcileStatus struct {
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	ClosedAt   time.Time `json:"closed_at"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
	Source     int64     `json:"source"`
	Warehouse  int64     `json:"warehouse"` // fact + quarantined (fact alone against group_by's counts)
	Ratio      float64   `json:"ratio"`
	Gaps       int       `json:"gaps"`
	URL        string    `json:"url"`
}

// QuarantineState is what was quarantined in the last 24 h.
type QuarantineState struct {
	Records int64                      `json:"records"`
	ByRule  []warehouse.ViolationCount `json:"by_rule"`
}

// Alert is a condition of the guide's alert table (or the issue's
// additions) that holds now, named as the Prometheus rules name it
// (KtpipeScheduleMissing is status's own: Prometheus cannot see a
// schedule; TestStatusAlertsAreNamedAsTheRules holds the two together).
type Alert struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
	Action string `json:"action"`
}

// Status reads the pipeline's state, writes it to out (one screen, or
// JSON) and returns the exit code: StatusHealthy, StatusAlert or
// StatusUnknown. An alert that holds wins over what could not be read:
// something is wrong either way.
func Status(ctx context.Context, o StatusOptions, out io.Writer) int {
	r := Gather(ctx, o)
	if o.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		printStatus(out, r, o.Now)
	}
	return r.ExitCode
}

// Gather reads everything status shows and evaluates the alert conditions.
func Gather(ctx context.Context, o StatusOptions) StatusReport {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.CheckpointKey == "" {
		o.CheckpointKey = workflows.DefaultCheckpointKey
	}
	r := StatusReport{At: o.Now.UTC(), Running: []WorkflowLink{}, Failed: []WorkflowLink{}, Alerts: []Alert{}, Unknown: []string{}}
	unknown := func(what string, err error) { r.Unknown = append(r.Unknown, fmt.Sprintf("%s: %v", what, err)) }
	alert := func(name, action, format string, args ...any) {
		r.Alerts = append(r.Alerts, Alert{Name: name, Detail: fmt.Sprintf(format, args...), Action: action})
	}
	interval := o.Interval
	since := o.Now.Add(-RecentWindow)

	if o.Temporal == nil {
		err := o.TemporalErr
		if err == nil {
			err = errors.New("not configured")
		}
		unknown("temporal", err)
	} else {
		r.Schedule = &ScheduleStatus{ID: o.ScheduleID}
		d, err := o.Temporal.DescribeSchedule(ctx)
		switch {
		case errors.Is(err, ErrNoSchedule):
			r.Schedule.State = "missing"
			alert("KtpipeScheduleMissing", "ktpipe schedule apply", "schedule %s does not exist: nothing pulls", o.ScheduleID)
		case err != nil:
			r.Schedule = nil
			unknown("schedule", err)
		default:
			fillSchedule(r.Schedule, d, &interval)
		}
		if o.CompactEvery > 0 {
			gatherCompaction(ctx, o, &r, unknown, alert)
		}
		if n, err := o.Temporal.WorkerPollers(ctx); err != nil {
			unknown("workers", err)
		} else {
			r.WorkerPollers = &n
			if n == 0 {
				alert("KtpipeWorkerDown", "start bin/worker (systemd/compose); check its log", "no worker polled task queue %s in the last 5 minutes", o.TaskQueue)
			}
		}
		if wfs, err := o.Temporal.RecentWorkflows(ctx, "Running", time.Time{}, statusWorkflowLimit); err != nil {
			unknown("running workflows", err)
		} else {
			r.Running = links(o, wfs)
		}
		if wfs, err := o.Temporal.RecentWorkflows(ctx, "Failed", since, statusWorkflowLimit); err != nil {
			unknown("failed workflows", err)
		} else {
			// The last 24 h are listed; only the last hour's failures
			// alert, as in the rules: one failure hours ago does not make
			// a healthy pipeline exit 1 for a day.
			r.Failed = links(o, wfs)
			failed, exports := 0, 0
			for _, w := range wfs {
				if w.Close.Before(o.Now.Add(-FailedWindow)) {
					continue
				}
				failed++
				if w.Type == "ExportLoad" {
					exports++
				}
			}
			if failed > 0 {
				alert("KtpipeWorkflowFailed", "open the failed run in the Temporal UI; then ktpipe replay --load-id ID (from its progress) or --since/--until",
					"%s failed in the last hour", plural(failed, "workflow", statusWorkflowLimit))
			}
			if exports > 0 {
				alert("KtpipeExportFailed", "ktpipe export --since T --until T --wait for its window (or replay --since/--until)",
					"%s failed in the last hour", plural(exports, "export load", statusWorkflowLimit))
			}
		}
		if rec, err := o.Temporal.LastReconcile(ctx); err != nil {
			unknown("last reconcile", err)
		} else if rec != nil {
			rec.URL = workflowURL(o, rec.WorkflowID, rec.RunID)
			r.LastReconcile = rec
			if rec.Ratio < MinCompleteness {
				alert("KtpipeReconcileIncomplete", "ktpipe reconcile --since T --until T --replay-gaps --wait",
					"last reconcile %s: warehouse %d of %d API events (%s < %s)", rec.WorkflowID, rec.Warehouse, rec.Source, pct(rec.Ratio), pct(MinCompleteness))
			}
		}
	}

	if o.Warehouse == nil {
		err := o.WarehouseErr
		if err == nil {
			err = errors.New("not configured")
		}
		unknown("bigquery", err)
	} else {
		gatherWarehouse(ctx, o, &r, interval, unknown, alert)
	}

	switch {
	case len(r.Alerts) > 0:
		r.Health, r.ExitCode = "alert", StatusAlert
	case len(r.Unknown) > 0:
		r.Health, r.ExitCode = "unknown", StatusUnknown
	default:
		r.Health, r.ExitCode = "healthy", StatusHealthy
	}
	return r
}

func gatherWarehouse(ctx context.Context, o StatusOptions, r *StatusReport, interval time.Duration,
	unknown func(string, error), alert func(string, string, string, ...any)) {
	w := o.Warehouse
	if at, err := w.CheckpointTime(ctx, o.CheckpointKey); err != nil {
		unknown("checkpoint", err)
	} else if at.IsZero() {
		unknown("checkpoint", errors.New("none written yet: the first pull has not finished"))
	} else {
		cursor, err := w.Checkpoint(ctx, o.CheckpointKey)
		if err != nil {
			unknown("checkpoint", err)
		}
		age := o.Now.Sub(at)
		r.Checkpoint = &CheckpointState{Key: o.CheckpointKey, Cursor: cursor, WrittenAt: at.UTC(), AgeSeconds: age.Seconds()}
		if limit := 2*interval + StallGrace; interval > 0 && age > limit {
			alert("KtpipePullStalled", "ktpipe schedule describe; ktpipe schedule trigger --wait",
				"checkpoint written %s ago, more than 2 × %s + %s", ago(age), interval, StallGrace)
		}
	}
	// Look back an hour, or the stale age if longer: a row older than
	// that is stale anyway, and said so as no audit in the lookback.
	staleAge := workflows.AuditStaleAge(o.AuditInterval)
	lookback := max(time.Hour, staleAge)
	const staleAction = "ktpipe schedule apply (the Audit schedule missing or paused); look for failed Audit runs above"
	audits, err := w.AuditHistory(ctx, o.Now.Add(-lookback), 1)
	switch {
	case err != nil:
		unknown("audit", err)
	case len(audits) == 0:
		alert("KtpipeAuditStale", staleAction, "no audit in the last %s (the audit alerts are blind)", lookback)
	default:
		a := audits[0]
		if age := o.Now.Sub(a.AuditedAt); age > staleAge {
			alert("KtpipeAuditStale", staleAction, "newest audit %s ago, more than %s (3 audit intervals, 15 min at least)", ago(age), staleAge)
		}
		s := newAuditStatus(a)
		if s.LagSeconds != nil {
			lag := *s.LagSeconds
			if lag > MaxLagSeconds {
				alert("KtpipeIngestionLag", "ktpipe schedule trigger --wait (or serve webhooks); check the worker log",
					"warehouse newest event is %s behind the API's (> %ds)", ago(time.Duration(lag*float64(time.Second))), MaxLagSeconds)
			}
		}
		r.Audit = s
		if a.SchemaViolations > 0 {
			alert("KtpipeSchemaViolations", "ktpipe reports (dq_schema_violations); after a fix, ktpipe replay --quarantine --rule R --wait",
				"%d records quarantined in the last audit interval", a.SchemaViolations)
		}
		if a.FactDuplicateRatio > MaxDuplicateRatio {
			alert("KtpipeDuplicateEvents", "ktpipe reports (dq_duplicate_rate); file a bug: the fact table must hold each event id once; after a fix, ktpipe schedule audit --recount --wait",
				"fact duplicate ratio %s > %s (%d rows)", pct(a.FactDuplicateRatio), pct(MaxDuplicateRatio), a.FactDuplicateRows)
		}
		if a.CompletenessRatio < MinCompleteness {
			alert("KtpipeCompletenessLow", "ktpipe reconcile --since T --until T --replay-gaps --wait",
				"warehouse %d of %d API events in the last closed hours (%s < %s)", a.WarehouseCount, a.APICount, pct(a.CompletenessRatio), pct(MinCompleteness))
		}
	}
	if qs, err := w.QuarantineSince(ctx, o.Now.Add(-RecentWindow)); err != nil {
		unknown("quarantine", err)
	} else {
		q := &QuarantineState{ByRule: qs}
		for _, v := range qs {
			q.Records += v.Records
		}
		r.Quarantine24h = q
	}
}

// CompactionGrace is what the compaction may take beyond two intervals
// before status says it is behind: the run itself and the schedule's
// start (the KtpipeCompactionBehind rule's 15 minutes).
const CompactionGrace = 15 * time.Minute

// gatherCompaction checks the compaction's schedule when loads wait for
// it: missing or paused, nothing commits them; active, a run must have
// started within two intervals and the grace (a run still going when the
// next is due makes that one skipped, so two). It reads Temporal only:
// the pending loads' own ages are the workers' gauges.
func gatherCompaction(ctx context.Context, o StatusOptions, r *StatusReport,
	unknown func(string, error), alert func(string, string, string, ...any)) {
	id := o.CompactScheduleID
	d, err := o.Temporal.DescribeCompactSchedule(ctx)
	switch {
	case errors.Is(err, ErrNoSchedule):
		r.Compaction = &ScheduleStatus{ID: id, State: "missing"}
		alert("KtpipeScheduleMissing", "ktpipe schedule apply", "schedule %s does not exist: loads marked pending are never committed (KTPIPE_COMPACT_EVERY is %s)", id, o.CompactEvery)
		return
	case err != nil:
		unknown("compaction schedule", err)
		return
	}
	every := o.CompactEvery
	r.Compaction = &ScheduleStatus{ID: id}
	fillSchedule(r.Compaction, d, &every)
	if r.Compaction.State == "paused" {
		alert("KtpipeCompactionBehind", "temporal schedule toggle --unpause --schedule-id "+id,
			"schedule %s is paused: loads marked pending wait, in the live view but not in fact_ai_event", id)
		return
	}
	// The clock starts at the schedule's creation or last change (an
	// unpause, a new interval) or its last run, whichever is latest.
	last, what := d.Info.CreatedAt, "was created"
	if d.Info.LastUpdateAt.After(last) {
		last, what = d.Info.LastUpdateAt, "was last changed"
	}
	for _, a := range d.Info.RecentActions {
		if a.ActualTime.After(last) {
			last, what = a.ActualTime, "last started a run"
		}
	}
	if limit := 2*every + CompactionGrace; !last.IsZero() && o.Now.Sub(last) > limit {
		// A run still going skips the ones due meanwhile: loads marked
		// after it listed them wait, so it is behind too, but say so.
		running := ""
		if len(d.Info.RunningWorkflows) > 0 {
			running = "; a run is still going: " + d.Info.RunningWorkflows[0].WorkflowID
		}
		alert("KtpipeCompactionBehind", "ktpipe schedule compact --wait; look for failed or running Compact runs",
			"schedule %s %s %s ago, more than 2 × %s + %s%s", id, what, ago(o.Now.Sub(last)), every, CompactionGrace, running)
	}
}

func fillSchedule(s *ScheduleStatus, d *client.ScheduleDescription, interval *time.Duration) {
	s.State = "active"
	if d.Schedule.State != nil && d.Schedule.State.Paused {
		s.State = "paused"
		s.Note = d.Schedule.State.Note
	}
	if d.Schedule.Spec != nil && len(d.Schedule.Spec.Intervals) > 0 {
		*interval = d.Schedule.Spec.Intervals[0].Every
		s.Every = interval.String()
	}
	// A paused schedule has no next run, whatever times it computes.
	if s.State == "active" && len(d.Info.NextActionTimes) > 0 {
		t := d.Info.NextActionTimes[0].UTC()
		s.NextRun = &t
	}
}

func links(o StatusOptions, wfs []WorkflowSummary) []WorkflowLink {
	out := make([]WorkflowLink, 0, len(wfs))
	for _, w := range wfs {
		l := WorkflowLink{Type: w.Type, ID: w.ID, RunID: w.RunID, Start: w.Start.UTC(), URL: workflowURL(o, w.ID, w.RunID)}
		if !w.Close.IsZero() {
			c := w.Close.UTC()
			l.Close = &c
		}
		out = append(out, l)
	}
	return out
}

// workflowURL is a workflow run's history page in the Temporal UI (the
// same path on the dev server's UI, a self-hosted UI and Temporal Cloud).
func workflowURL(o StatusOptions, id, runID string) string {
	ns := o.Namespace
	if ns == "" {
		ns = "default"
	}
	return strings.TrimRight(o.UIURL, "/") + "/namespaces/" + url.PathEscape(ns) + "/workflows/" + url.PathEscape(id) + "/" + url.PathEscape(runID) + "/history"
}

// TemporalUIURL is the Temporal UI's base URL: explicit when set
// (KTPIPE_TEMPORAL_UI_URL), Temporal Cloud's for a *.tmprl.cloud address,
// else the dev server's UI port (8233) on the frontend's host.
func TemporalUIURL(explicit, address string) string {
	if explicit != "" {
		return strings.TrimRight(explicit, "/")
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	switch {
	case strings.HasSuffix(host, ".tmprl.cloud"):
		return "https://cloud.temporal.io"
	case host == "" || host == "0.0.0.0" || host == "::":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, "8233")
}

// scheduleLine is a schedule's state, interval, next run and note.
func scheduleLine(s *ScheduleStatus, now time.Time) string {
	line := s.State
	if s.Every != "" {
		line += ", every " + s.Every
	}
	if s.NextRun != nil {
		line += fmt.Sprintf(", next run %s (in %s)", s.NextRun.Format(time.RFC3339), ago(s.NextRun.Sub(now)))
	}
	if s.Note != "" {
		line += fmt.Sprintf(" (note: %q)", s.Note)
	}
	return line
}

func printStatus(out io.Writer, r StatusReport, now time.Time) {
	if now.IsZero() {
		now = r.At
	}
	head := map[string]string{"healthy": "OK", "alert": "ALERT", "unknown": "UNKNOWN"}[r.Health]
	switch r.Health {
	case "alert":
		head += fmt.Sprintf(" — %s hold%s", plural(len(r.Alerts), "condition", 0), map[bool]string{true: "s", false: ""}[len(r.Alerts) == 1])
	case "unknown":
		head += " — could not read everything"
	}
	fmt.Fprintf(out, "ktpipe status: %s   (%s)\n\n", head, r.At.Format(time.RFC3339))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if s := r.Schedule; s != nil {
		fmt.Fprintf(tw, "schedule\t%s: %s\n", s.ID, scheduleLine(s, now))
	}
	if s := r.Compaction; s != nil {
		fmt.Fprintf(tw, "compaction\t%s: %s\n", s.ID, scheduleLine(s, now))
	}
	if r.WorkerPollers != nil {
		fmt.Fprintf(tw, "workers\t%d polling\n", *r.WorkerPollers)
	}
	if c := r.Checkpoint; c != nil {
		fmt.Fprintf(tw, "checkpoint\twritten %s ago (%s), cursor %q\n", ago(time.Duration(c.AgeSeconds*float64(time.Second))), c.WrittenAt.Format(time.RFC3339), c.Cursor)
	}
	if a := r.Audit; a != nil {
		lag := "unknown (no event on one side)"
		if a.LagSeconds != nil {
			lag = fmt.Sprintf("%s (API newest %s, warehouse newest %s)", ago(time.Duration(*a.LagSeconds*float64(time.Second))),
				a.APINewest.UTC().Format(time.RFC3339), a.WarehouseNewest.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "lag\t%s; audited %s ago\n", lag, ago(now.Sub(a.AuditedAt)))
		fmt.Fprintf(tw, "completeness\t%s of API events, %s .. %s (%d of %d)\n", pct(a.CompletenessRatio),
			a.CompletenessStart.UTC().Format("01-02 15:04"), a.CompletenessEnd.UTC().Format("01-02 15:04"), a.WarehouseCount, a.APICount)
		counted := ""
		if a.Carried {
			counted = fmt.Sprintf(" (counted %s ago: nothing committed since)", ago(now.Sub(a.CountedAt)))
		}
		fmt.Fprintf(tw, "duplicates\t%s of fact rows%s\n", pct(a.FactDuplicateRatio), counted)
		fmt.Fprintf(tw, "violations\t%d in the last audit interval\n", a.SchemaViolations)
	}
	if rec := r.LastReconcile; rec != nil {
		fmt.Fprintf(tw, "reconcile\t%s complete (%d of %d, %d gaps), %s .. %s, finished %s ago\n", pct(rec.Ratio), rec.Warehouse, rec.Source, rec.Gaps,
			rec.Since.UTC().Format("01-02 15:04"), rec.Until.UTC().Format("01-02 15:04"), ago(now.Sub(rec.ClosedAt)))
	}
	if q := r.Quarantine24h; q != nil {
		var top []string
		for i, v := range q.ByRule {
			if i == 3 {
				top = append(top, "…")
				break
			}
			top = append(top, fmt.Sprintf("%s: %s ×%d", v.Field, v.Rule, v.Records))
		}
		line := fmt.Sprintf("%d records", q.Records)
		if len(top) > 0 {
			line += " (" + strings.Join(top, "; ") + ")"
		}
		fmt.Fprintf(tw, "quarantine 24h\t%s\n", line)
	}
	tw.Flush()
	for _, g := range []struct {
		title string
		wfs   []WorkflowLink
	}{{"running", r.Running}, {"failed in 24 h", r.Failed}} {
		fmt.Fprintf(out, "\n%s: %d\n", g.title, len(g.wfs))
		for _, w := range g.wfs {
			fmt.Fprintf(out, "  %-16s %s  started %s ago\n      %s\n", w.Type, w.ID, ago(now.Sub(w.Start)), w.URL)
		}
	}
	if len(r.Alerts) > 0 {
		fmt.Fprintf(out, "\nALERTS\n")
		for _, a := range r.Alerts {
			fmt.Fprintf(out, "  %s: %s\n      → %s\n", a.Name, a.Detail, a.Action)
		}
	}
	if len(r.Unknown) > 0 {
		fmt.Fprintf(out, "\nCOULD NOT READ\n")
		for _, u := range r.Unknown {
			fmt.Fprintf(out, "  %s\n", u)
		}
	}
}

func ago(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func pct(r float64) string { return fmt.Sprintf("%.3f %%", r*100) }

// plural says "n things", "≥n things" when n reached the listing's limit.
func plural(n int, thing string, limit int) string {
	s := fmt.Sprintf("%d %s", n, thing)
	if n != 1 {
		s += "s"
	}
	if limit > 0 && n >= limit {
		s = "≥" + s
	}
	return s
}

// RecentWorkflows lists ktpipe's workflows in a status, closed after a
// time when it is not zero, newest first, at most limit.
func (c *Control) RecentWorkflows(ctx context.Context, status string, closedAfter time.Time, limit int) ([]WorkflowSummary, error) {
	query := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = '%s'", c.TaskQueue, status)
	if !closedAfter.IsZero() {
		query += fmt.Sprintf(" AND CloseTime > '%s'", closedAfter.UTC().Format(time.RFC3339))
	}
	return c.listQuery(ctx, status+" workflows", query, limit)
}

func (c *Control) listQuery(ctx context.Context, what, query string, limit int) ([]WorkflowSummary, error) {
	resp, err := c.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	var out []WorkflowSummary
	for i, e := range resp.Executions {
		if i == limit {
			break
		}
		s := WorkflowSummary{ID: e.Execution.WorkflowId, RunID: e.Execution.RunId, Type: e.Type.Name,
			Status: e.Status.String(), Start: e.StartTime.AsTime()}
		if e.CloseTime != nil {
			s.Close = e.CloseTime.AsTime()
		}
		out = append(out, s)
	}
	return out, nil
}

// WorkerPollers counts the pollers Temporal saw on the task queue in the
// last 5 minutes (the server's poller history): 0 means no worker runs.
func (c *Control) WorkerPollers(ctx context.Context) (int, error) {
	resp, err := c.Client.DescribeTaskQueue(ctx, c.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return 0, fmt.Errorf("describe task queue %s: %w", c.TaskQueue, err)
	}
	return len(resp.GetPollers()), nil
}

// LastReconcile is the newest completed Reconcile's totals, or nil when
// none completed yet.
func (c *Control) LastReconcile(ctx context.Context) (*ReconcileStatus, error) {
	wfs, err := c.listQuery(ctx, "reconciles", fmt.Sprintf("TaskQueue = '%s' AND WorkflowType = 'Reconcile' AND ExecutionStatus = 'Completed'", c.TaskQueue), 1)
	if err != nil || len(wfs) == 0 {
		return nil, err
	}
	w := wfs[0]
	var res workflows.ReconcileResult
	if err := c.Client.GetWorkflow(ctx, w.ID, w.RunID).Get(ctx, &res); err != nil {
		return nil, fmt.Errorf("reconcile %s result: %w", w.ID, err)
	}
	s := ReconcileStatus{WorkflowID: w.ID, RunID: w.RunID, ClosedAt: w.Close.UTC(), Gaps: len(res.Gaps), Ratio: 1}
	for i, win := range res.Windows {
		if i == 0 || win.Since.Before(s.Since) {
			s.Since = win.Since
		}
		if win.Until.After(s.Until) {
			s.Until = win.Until
		}
	}
	s.Source, s.Warehouse, s.Ratio = res.Completeness()
	return &s, nil
}
