package payload

import (
	"fmt"
	"time"
)

// AuditRow is one row of the audit table (see the columns in
// schemas/bqschema). A zero time is written as NULL.
type AuditRow struct {
	AuditedAt           time.Time
	APINewest           time.Time
	WarehouseNewest     time.Time
	IngestionLagSeconds float64
	FactRows            int64
	FactDuplicateRows   int64
	FactDuplicateRatio  float64
	SourceRecords       int64
	SourceResends       int64
	SourceResendRatio   float64
	IntervalStart       time.Time
	IntervalEnd         time.Time
	SchemaViolations    int64
	CompletenessStart   time.Time
	CompletenessEnd     time.Time
	APICount            int64
	WarehouseCount      int64
	CompletenessRatio   float64
	// CountedAt is when the fact's figures (newest, rows, duplicates)
	// were taken: this audit's time, or an earlier audit's of the same
	// day whose counts it carries because nothing was committed since
	// (see warehouse.MeasureAudit). The completeness count is summed
	// from CountedHours, counted with them or, when the hours moved past
	// the day counted, by this audit (hours not whole are counted as a
	// window by each audit, CountedHours empty). Zero (NULL) in rows of
	// the version before, which always counted.
	CountedAt time.Time
	// CountedSince is the first day those fact figures cover, and
	// CountedCommits the commit_log rows logged since it when they were
	// taken: a later audit with the same two carries them. CountedNewest
	// is the newest event they found (fact and quarantine): the live
	// view's, which WarehouseNewest may be, is measured by every audit,
	// since its rows leave the view's window.
	CountedSince   time.Time
	CountedCommits int64
	CountedNewest  time.Time
	// CountedHours is the count of each hour from the completeness
	// hours' start, taken with the days' counts or when the hours moved
	// beyond it: an audit carries them with the days'.
	CountedHours HourCounts
	LiveCount
	// LagKnown, on read, is false when the lag was NULL (no event on one
	// side yet); IngestionLagSeconds is then 0.
	LagKnown bool
}

// HourCounts is what the warehouse holds (fact, and quarantine not in
// fact) of each hour of event time from Since, as CountWindow counts a
// window (warehouse.CountHours says how not quite): Counts[i] is the
// hour Since + i h. It changes only with a
// commit, so an audit counts a day of hours ahead and the hours moving
// need no count.
type HourCounts struct {
	Since  time.Time `json:"since"`
	Counts []int64   `json:"counts"`
}

// Sum is the count of w's hours, and whether h holds each of them (w in
// whole hours within h's).
func (h HourCounts) Sum(w Window) (int64, bool) {
	from, to := w.Since.Sub(h.Since), w.Until.Sub(h.Since)
	if len(h.Counts) == 0 || from < 0 || to <= from || from%time.Hour != 0 || to%time.Hour != 0 || int(to/time.Hour) > len(h.Counts) {
		return 0, false
	}
	var n int64
	for _, c := range h.Counts[from/time.Hour : to/time.Hour] {
		n += c
	}
	return n, true
}

// LiveCount is the live view's newest event as an audit knows it
// (warehouse.MeasureLive): LiveNewest, the newest event_timestamp of
// the live_events rows in the view's window; LiveNewestIngested, the
// latest ingested_at of the rows with that timestamp (it leaves the
// window then); LiveCountedAt, when the window was last read whole. An audit in
// the hour after reads only what was ingested since, and carries the
// rest. Zero (NULL): no live view, or a row of the version before.
type LiveCount struct {
	LiveNewest, LiveNewestIngested, LiveCountedAt time.Time
}

// MaxLiveLanding bounds a live landing, its attempts included (the
// activities' schedule-to-close timeouts): each streaming request stamps
// its rows' ingested_at as it is sent (warehouse.InsertLive), so a row
// shows in live_events at most this long (and the streaming buffer's
// seconds) after its stamp. The audit's read of the rows ingested since
// its last whole read counts on it.
const MaxLiveLanding = 5 * time.Minute

// AuditScope bounds what one audit reads: fact and quarantine partitions
// from Since's date on (event_date, quarantined_at), and the ledger's
// rows of the interval (raw's partitions too, for an interval with rows
// an older worker wrote), so its cost does not grow with the tables'
// history.
type AuditScope struct {
	Since                      time.Time // first partition audited
	IntervalStart, IntervalEnd time.Time // the audit interval (violations, resends)
}

// AuditMeasures is what the warehouse says in an audit.
type AuditMeasures struct {
	// WarehouseNewest is the newest event timestamp the warehouse holds in
	// the partitions audited: in fact_ai_event or, for an invalid event
	// (which has arrived too), in quarantine. Zero when there is none.
	WarehouseNewest   time.Time
	FactRows          int64
	FactDuplicateRows int64 // rows beyond the first per event (by key; by id when a row has none)
	SourceRecords     int64 // rows and quarantined records of the chunks committed in the interval (the ledger's)
	SourceResends     int64 // of those rows, the ones whose event the fact table already held when they committed
	SchemaViolations  int64 // records quarantined by loads committed in the interval
}

// AuditWarehouseInput is what the audit asks the warehouse.
type AuditWarehouseInput struct {
	Scope        AuditScope
	Completeness Window // the last closed hours checked
	// Recount takes every count again, carrying none from an earlier
	// audit: for writes to the warehouse that did not go through
	// ktpipe's commits (which commit_log does not see).
	Recount bool
}

// AuditWarehouseResult is the warehouse's side of an audit.
type AuditWarehouseResult struct {
	AuditMeasures
	CompletenessCount int64 // fact + quarantine in the completeness window
	// When the fact's figures were taken, and what they cover (see
	// AuditRow).
	CountedAt, CountedSince, CountedNewest time.Time
	CountedCommits                         int64
	CountedHours                           HourCounts
	LiveCount
	// IntervalStart is where the interval measured began: the audit
	// before's end when that is earlier than the one asked for (an audit
	// skipped or failed between them). Zero from a worker of the version
	// before: the interval asked for.
	IntervalStart time.Time
}

// NewestInput asks for the API's newest event timestamp.
type NewestInput struct {
	// After is the warehouse's newest event timestamp: usually the API has
	// nothing newer, which one count call confirms. Zero: look from Floor.
	After time.Time
	// Floor bounds the search: an API newest event older than this is not
	// looked for (the warehouse is then that far behind anyway).
	Floor time.Time
	Until time.Time // exclusive upper bound (the audit's time plus a margin for clocks)
}

// ReconcileStateKey is the pipeline_state key of the last scheduled
// reconcile's outcome (JSON ReconcileState).
const ReconcileStateKey = "scheduled_reconcile"

// ReconcileState is the last scheduled reconcile's outcome.
type ReconcileState struct {
	Since, Until time.Time
	Source       int64   // events the API counts
	Warehouse    int64   // fact + quarantine
	Ratio        float64 // Warehouse / Source (1 when Source is 0)
	Gaps         int     // windows with an unexplained gap
	Workflow     string  // the Reconcile run's id
}

// WarehouseCount is what the warehouse holds for a window.
type WarehouseCount struct {
	Fact        int64
	Quarantined int64
	Unplaced    int64 // quarantined with no usable timestamp, at most 30 days before the window (warehouse.CountQuarantined)
}

// Steps is a range cut into windows of Step, the last one ending at Until.
type Steps struct {
	Since, Until time.Time
	Step         time.Duration
}

// MaxGroupedHours bounds the range CountSourceByWindow asks for in one
// call: one group_by row per hour, ~150 bytes each, so about 7.5 MB of
// JSON at most (the client caps a response at KEEPTRUSTS_MAX_RESPONSE_BYTES,
// 64 MiB by default). 50,000 hours is 5.7 years.
const MaxGroupedHours = 50_000

// MaxCountedSpan bounds the range CountFactByWindow counts in one
// query: a day's windows read the partitions one window of a day read
// alone.
const MaxCountedSpan = 24 * time.Hour

// CheckCountSteps checks steps for a count by window: a range of at most
// MaxCountedSpan, in steps of whole minutes (so at most 1,440 windows,
// and each window's index is a whole division of microseconds).
func CheckCountSteps(s Steps) error {
	if !s.Since.Before(s.Until) || s.Until.Sub(s.Since) > MaxCountedSpan || s.Step < time.Minute || s.Step%time.Minute != 0 {
		return fmt.Errorf("%s..%s by %s is not a range of at most %s in steps of whole minutes", s.Since, s.Until, s.Step, MaxCountedSpan)
	}
	return nil
}

// HourAligned says whether a range and step are whole UTC hours, which
// group_by by hour can count.
func HourAligned(in Steps) bool {
	h := func(t time.Time) bool { return t.Equal(t.Truncate(time.Hour)) }
	return h(in.Since) && h(in.Until) && in.Step > 0 && in.Step%time.Hour == 0 && in.Since.Before(in.Until)
}

// RunOutcome is how a load workflow that the caller did not start
// ended (the WorkflowOutcome activity's result).
type RunOutcome struct {
	Running bool
	Failed  string // why it failed, was cancelled or terminated
	// Rows and Quarantined of its result (the fields of that name of an
	// ExportLoadResult), decoded here: workflow code does not reflect.
	Rows, Quarantined int64
}
