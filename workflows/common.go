// Package workflows decides the order, retries, waits and checkpoints of
// ktpipe's loads. It never touches HTTP or BigQuery itself: activities
// do, and only keys, cursors and counts pass through workflow history.
// It schedules activities by their names and exchanges package payload's
// types with them, so it links none of their clients (TestWorkflowsLinkNoClients).
package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/metrics/wfmetrics"
	"github.com/ktpipe/ktpipe/payload"
)

// Search attributes, so an operator can filter ktpipe's workflows in the
// Temporal UI.
var (
	// KindKey is the kind of workflow: export, pull, backfill, replay,
	// reconcile, webhooks, quarantine-replay, audit, cleanup.
	KindKey = temporal.NewSearchAttributeKeyKeyword("KtpipeKind")
	// WindowStartKey is the start of the event window a workflow covers.
	WindowStartKey = temporal.NewSearchAttributeKeyTime("KtpipeWindowStart")
	// WindowEndKey is the (exclusive) end of that window.
	WindowEndKey = temporal.NewSearchAttributeKeyTime("KtpipeWindowEnd")
	// ExportIDKey is the Keeptrusts export a workflow loads.
	ExportIDKey = temporal.NewSearchAttributeKeyKeyword("KtpipeExportId")
	// LoadIDKey is the load an export or replay stages and merges: the id
	// a Replay of a failed load takes.
	LoadIDKey = temporal.NewSearchAttributeKeyKeyword("KtpipeLoadId")
)

// SearchAttributeKeys lists the keys a namespace must have registered.
var SearchAttributeKeys = []temporal.SearchAttributeKey{KindKey, WindowStartKey, WindowEndKey, ExportIDKey, LoadIDKey}

// ProgressQuery is the query every ktpipe workflow answers with its state.
const ProgressQuery = "progress"

// Task queue suffixes: API activities run on a rate-limited queue, merges
// on a queue served one at a time per worker.
const (
	APIQueueSuffix   = "-api"
	MergeQueueSuffix = "-merge"
)

// Tuning adjusts timeouts and parallelism; zero values take defaults.
// It travels in each workflow's input (so a running workflow keeps the
// values it started with, and replays stay deterministic); the starters
// fill Concurrency from KTPIPE_CONCURRENCY.
type Tuning struct {
	PollInterval    time.Duration `json:"pollInterval,omitempty"`    // first wait between export status polls (2s)
	MaxPollInterval time.Duration `json:"maxPollInterval,omitempty"` // cap of the poll backoff (1m)
	// HeartbeatTimeout is how long a worker may go silent before its
	// activity is retried elsewhere (10s): activities heartbeat every
	// third of it from a ticker, also while a slow statement runs, so it
	// bounds the time lost to a killed worker, not the work.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
	// WarehouseTimeout bounds one warehouse activity attempt (1h); a
	// worker that dies mid-statement is noticed by HeartbeatTimeout.
	WarehouseTimeout time.Duration `json:"warehouseTimeout,omitempty"`
	Concurrency      int           `json:"concurrency,omitempty"` // chunk stages in flight (4)
}

func (t Tuning) withDefaults() Tuning {
	if t.PollInterval <= 0 {
		t.PollInterval = 2 * time.Second
	}
	if t.MaxPollInterval <= 0 {
		t.MaxPollInterval = time.Minute
	}
	if t.HeartbeatTimeout <= 0 {
		t.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if t.WarehouseTimeout <= 0 {
		t.WarehouseTimeout = time.Hour
	}
	if t.Concurrency <= 0 {
		t.Concurrency = 4
	}
	return t
}

// DefaultHeartbeatTimeout: a killed worker's activity is retried about
// this long after its last heartbeat (sent every third of it).
const DefaultHeartbeatTimeout = 10 * time.Second

// Activities are scheduled by their registered names (payload's name
// constants), not by method references: workflow code then links
// payload's types only, not the activities' BigQuery, Cloud Storage and
// Prometheus clients. The activities package asserts at compile time
// that its methods have payload.Activities' signatures, and a test there
// that every name is a registered method.

// Retries: transient failures (5xx, 429, network, a killed worker) are
// retried with backoff from 1s, so a killed worker's activity starts again
// about a second after its heartbeat timeout, up to 15s between attempts.
// Permanent ones (the error types below, marked non-retryable by the
// activities) fail at once with their reason. Everything has a ceiling
// after which the workflow fails, visibly: every context has a
// ScheduleToClose, and the warehouse and long activities at most
// maxAttempts attempts. The API's context has no attempt limit: a 429
// storm is many short attempts, and its hour bounds it.
const maxAttempts = 60 // ≈15 min of a failure that never heals, at 15s apart

var nonRetryable = []string{
	payload.ErrTypeAPI, payload.ErrTypeExpired, payload.ErrTypeSchema,
	payload.ErrTypeMalformed, payload.ErrTypeNothingStaged, payload.ErrTypeChecksum,
}

// retry is the retry policy of warehouse and long activities.
var retry = &temporal.RetryPolicy{
	InitialInterval:        time.Second,
	BackoffCoefficient:     2,
	MaximumInterval:        15 * time.Second,
	MaximumAttempts:        maxAttempts,
	NonRetryableErrorTypes: nonRetryable,
}

// apiRetry is retry without an attempt limit, for short API calls.
var apiRetry = &temporal.RetryPolicy{
	InitialInterval:        time.Second,
	BackoffCoefficient:     2,
	MaximumInterval:        15 * time.Second,
	NonRetryableErrorTypes: nonRetryable,
}

// Ceilings per activity context (ScheduleToClose): a long outage becomes
// a failed workflow an operator sees, not a pull retrying forever behind
// an overlap-skip schedule.
const (
	apiCeiling       = time.Hour
	longCeiling      = 6 * time.Hour
	warehouseCeiling = 6 * time.Hour
)

// apiCtx is for short calls to the Keeptrusts API, on the rate-limited
// queue. They heartbeat too, so a call on a killed worker is retried
// after DefaultHeartbeatTimeout, not after StartToCloseTimeout.
func apiCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              workflow.GetInfo(ctx).TaskQueueName + APIQueueSuffix,
		StartToCloseTimeout:    2 * time.Minute,
		HeartbeatTimeout:       DefaultHeartbeatTimeout,
		ScheduleToCloseTimeout: apiCeiling,
		RetryPolicy:            apiRetry,
	})
}

// longCtx is for activities that stream data and heartbeat (download,
// split, pull, merge): a dead worker is noticed within HeartbeatTimeout
// and the retry resumes from what was staged.
func longCtx(ctx workflow.Context, t Tuning, queueSuffix string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              workflow.GetInfo(ctx).TaskQueueName + queueSuffix,
		StartToCloseTimeout:    2 * time.Hour,
		HeartbeatTimeout:       t.HeartbeatTimeout,
		ScheduleToCloseTimeout: longCeiling,
		RetryPolicy:            retry,
	})
}

// warehouseCtx is for BigQuery statements and load jobs. They heartbeat
// while a statement runs, so a dead worker is noticed within
// HeartbeatTimeout however long a healthy statement takes.
func warehouseCtx(ctx workflow.Context, t Tuning) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    t.WarehouseTimeout,
		HeartbeatTimeout:       t.HeartbeatTimeout,
		ScheduleToCloseTimeout: warehouseCeiling,
		RetryPolicy:            retry,
	})
}

// loadID makes a staging-safe load id from workflow-derived parts.
func loadID(parts ...string) string { return payload.LoadID(parts...) }

// fetchGateways lists the known gateways (for dim_gateway) and their ids
// (for validation).
func fetchGateways(ctx workflow.Context) ([]payload.Gateway, []string, error) {
	var gateways []payload.Gateway
	if err := workflow.ExecuteActivity(apiCtx(ctx), payload.FetchGateways).Get(ctx, &gateways); err != nil {
		return nil, nil, fmt.Errorf("list gateways: %w", err)
	}
	ids := make([]string, len(gateways))
	for i, g := range gateways {
		ids[i] = g.ID
	}
	return gateways, ids, nil
}

// HasErrorType reports whether any ApplicationError in err's chain has
// the given type (workflows wrap activity and child errors with context,
// so the interesting type is usually not the outermost).
func HasErrorType(err error, typ string) bool {
	for err != nil {
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) {
			return false
		}
		if appErr.Type() == typ {
			return true
		}
		err = appErr.Unwrap()
	}
	return false
}

// loadTail is what a path adds to landLoad.
type loadTail struct {
	// Refresh refreshes the dimensions with Gateways after the merge. A
	// pull or a quarantine replay loads several batches in one run and
	// refreshes once after the last instead: 20 batches, one refresh.
	Refresh  bool
	Gateways []payload.Gateway
	Phase    func(string) // names each step for the workflow's progress, if set
	OnStaged func()       // hears of each staged chunk, if set
}

// landLoad is the one tail of every load, in one order: stage and merge
// the chunks, refresh the dimensions (if o.Refresh), check the warehouse
// against the manifest, count the records. The clean-up is the caller's
// (cleanupLoad): a pull writes its checkpoint between the check and the
// clean-up, and a webhook batch removes its delivery files there too.
func landLoad(ctx workflow.Context, t Tuning, source string, man payload.Manifest, o loadTail) error {
	phase := o.Phase
	if phase == nil {
		phase = func(string) {}
	}
	phase("loading")
	if err := loadChunks(ctx, t, man.LoadID, source, man.Chunks, o.OnStaged); err != nil {
		return err
	}
	if o.Refresh {
		phase("refreshing dimensions")
		if err := refreshDimensions(ctx, t, o.Gateways); err != nil {
			return err
		}
	}
	phase("checking")
	if err := checkLoad(ctx, t, man); err != nil {
		return err
	}
	countLoad(ctx, source, man)
	return nil
}

// refreshDimensions rebuilds the dimensions from what commits added
// (fact_usage, fact_users) and the gateway list (the worker coalesces
// concurrent refreshes).
func refreshDimensions(ctx workflow.Context, t Tuning, gateways []payload.Gateway) error {
	if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.RefreshDimensions, gateways).Get(ctx, nil); err != nil {
		return fmt.Errorf("refresh dimensions: %w", err)
	}
	return nil
}

// cleanupLoad removes a finished load's staged files. A failure only
// leaves files behind, which the scheduled clean-up removes later.
func cleanupLoad(ctx workflow.Context, t Tuning, id string) {
	if err := workflow.ExecuteActivity(longCtx(ctx, t, ""), payload.CleanupLoad, id).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("staged files left behind", "load", id, "error", err)
	}
}

// loadChunks stages every chunk (bounded parallelism), then merges them
// on the merge queue.
func loadChunks(ctx workflow.Context, t Tuning, id, source string, chunks []payload.Chunk, onStaged func()) error {
	if err := stageChunks(ctx, t, id, chunks, onStaged); err != nil {
		return err
	}
	mctx := longCtx(ctx, t, MergeQueueSuffix)
	if err := workflow.ExecuteActivity(mctx, payload.MergeLoad, payload.MergeInput{LoadID: id, Source: source, Chunks: chunks}).Get(ctx, nil); err != nil {
		return fmt.Errorf("merge %s: %w", id, err)
	}
	return nil
}

// stageChunks stages every chunk, t.Concurrency at a time.
func stageChunks(ctx workflow.Context, t Tuning, id string, chunks []payload.Chunk, onStaged func()) error {
	wctx := warehouseCtx(ctx, t)
	var pending []workflow.Future
	wait := func() error {
		err := pending[0].Get(ctx, nil)
		pending = pending[1:]
		if err == nil && onStaged != nil {
			onStaged()
		}
		return err
	}
	for _, c := range chunks {
		if len(pending) == t.Concurrency {
			if err := wait(); err != nil {
				return fmt.Errorf("stage chunks of %s: %w", id, err)
			}
		}
		pending = append(pending, workflow.ExecuteActivity(wctx, payload.StageChunk, payload.ChunkInput{LoadID: id, Chunk: c}))
	}
	for len(pending) > 0 {
		if err := wait(); err != nil {
			return fmt.Errorf("stage chunks of %s: %w", id, err)
		}
	}
	return nil
}

// checkLoad verifies what a load left in the warehouse against its
// manifest: every valid row in the ledger and in the fact table, every
// invalid one in quarantine.
func checkLoad(ctx workflow.Context, t Tuning, man payload.Manifest) error {
	var chk payload.Completeness
	if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.CheckLoad, man.LoadID).Get(ctx, &chk); err != nil {
		return fmt.Errorf("check load %s: %w", man.LoadID, err)
	}
	return completeness(man, chk)
}

// completeness compares what the warehouse holds of a load with its
// manifest; a difference is a non-retryable error that says to replay it.
func completeness(man payload.Manifest, chk payload.Completeness) error {
	var problems []string
	if chk.LedgerRows != man.Rows || chk.LedgerQuar != man.Quarantined {
		problems = append(problems, fmt.Sprintf("ledger has %d rows/%d quarantined, manifest %d/%d", chk.LedgerRows, chk.LedgerQuar, man.Rows, man.Quarantined))
	}
	if chk.MissingInFact != 0 {
		problems = append(problems, fmt.Sprintf("%d landed rows missing from the fact table", chk.MissingInFact))
	}
	if man.Rows > 0 && chk.RawRows == 0 {
		problems = append(problems, "no rows in the raw table")
	}
	if len(problems) > 0 {
		return temporal.NewNonRetryableApplicationError("load "+man.LoadID+" incomplete: "+strings.Join(problems, "; ")+"; replay it", payload.ErrTypeIncomplete, nil)
	}
	return nil
}

// reportUnknownFields tells the operator the source sends fields the
// contract does not name yet; they are kept in the extra column.
func reportUnknownFields(ctx workflow.Context, man payload.Manifest) {
	if len(man.UnknownFields) > 0 {
		workflow.GetLogger(ctx).Warn("source sends fields the contract does not name; kept in the extra column",
			"load", man.LoadID, "fields", strings.Join(man.UnknownFields, ","))
	}
}

// countLoad counts a checked load's records by source kind (a backfill's
// exports count as export). The workflow's metrics handler drops what a
// replay of the history emits, so replays never count; a workflow task
// that fails after this line and runs again (another worker, a task
// timeout) counts again: the counters are at least once, the warehouse's
// audit is the exact figure.
func countLoad(ctx workflow.Context, source string, man payload.Manifest) {
	switch source {
	case "backfill":
		source = payload.SourceExport
	case payload.SourceQuarantineReplay:
		// Its records were counted when they first arrived (as
		// quarantined); counting the promoted ones again would make
		// loaded + quarantined exceed what the source sent.
		return
	}
	wfmetrics.CountRecords(workflow.GetMetricsHandler(ctx), source, man.Records, man.Rows, man.Quarantined, man.Resent)
}

// All is every workflow a ktpipe worker runs: the one list the worker
// registers and the replayer replays recorded histories against.
func All() []any {
	return []any{ExportLoad, HistoryExport, IncrementalPull, Backfill, Replay, QuarantineReplay,
		Reconcile, WebhookBatch, Cleanup, Audit, ScheduledReconcile, Compact}
}
