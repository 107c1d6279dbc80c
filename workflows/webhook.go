package workflows

import (
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// DeliverySignal carries the staging key of one webhook delivery to its
// WebhookBatch.
const DeliverySignal = "delivery"

// DefaultWebhookWindow is how long a batch collects deliveries by default.
const DefaultWebhookWindow = time.Minute

// WebhookBatchInput configures one batch of webhook deliveries.
type WebhookBatchInput struct {
	// Window is how long the batch collects deliveries before it loads
	// them (default 1m): one load per window, not per delivery, keeps
	// BigQuery jobs and DML far below their quotas.
	Window time.Duration `json:"window,omitempty"`
	Tuning Tuning        `json:"tuning,omitzero"`
}

// WebhookBatchResult sums up a batch.
type WebhookBatchResult struct {
	Deliveries  int   `json:"deliveries"`
	Missing     int   `json:"missing"` // deliveries whose file an earlier batch had loaded and removed
	Rows        int64 `json:"rows"`
	Quarantined int64 `json:"quarantined"`
}

// WebhookBatchID is the id of the batch that collects deliveries received
// at t: deliveries within one window share it (signal-with-start).
func WebhookBatchID(taskQueue string, t time.Time, window time.Duration) string {
	return fmt.Sprintf("%s-webhooks-%s", taskQueue, t.UTC().Truncate(window).Format("20060102T150405Z"))
}

// WebhookBatch collects the deliveries the receiver signals for Window,
// then splits, stages and merges them as one load. The receiver wrote
// each delivery to staging before signalling, and the merge dedups by
// event id, so a delivery the sender retried (the same file again, maybe
// in another batch) and the same events from the hourly pull land once.
func WebhookBatch(ctx workflow.Context, in WebhookBatchInput) (WebhookBatchResult, error) {
	if in.Window <= 0 {
		in.Window = DefaultWebhookWindow
	}
	t := in.Tuning.withDefaults()
	var res WebhookBatchResult
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (WebhookBatchResult, error) { return res, nil }); err != nil {
		return res, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet("webhooks")); err != nil {
		return res, err
	}
	details(ctx, "webhook batch", "collects deliveries for "+in.Window.String()+", then loads them as one load")
	deliveries := workflow.GetSignalChannel(ctx, DeliverySignal)
	seen := map[string]bool{}
	var keys []string
	add := func(key string) { // a retried delivery is signalled again
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	receive := func(c workflow.ReceiveChannel, _ bool) {
		var key string
		c.Receive(ctx, &key)
		add(key)
	}
	closed := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(deliveries, receive)
	sel.AddFuture(workflow.NewTimer(ctx, in.Window), func(workflow.Future) { closed = true })
	for !closed {
		sel.Select(ctx)
	}
	info := workflow.GetInfo(ctx)
	for round := 0; ; round++ {
		// Signals that arrived after the window or while the previous
		// round loaded: a workflow must not complete with signals it has
		// not handled.
		for {
			var key string
			if !deliveries.ReceiveAsync(&key) {
				break
			}
			add(key)
		}
		if len(keys) == 0 {
			return res, nil
		}
		sort.Strings(keys)
		id := loadID(info.WorkflowExecution.ID, info.WorkflowExecution.RunID[:8], fmt.Sprint(round))
		if err := loadDeliveries(ctx, t, id, keys, &res); err != nil {
			return res, err
		}
		keys = nil
	}
}

// oneLoadTail: webhook batches moved the dimension refresh before the
// check, into the order every load shares (landLoad).
const oneLoadTail = "one-load-tail"

// loadDeliveries loads one round of delivery files as load id.
func loadDeliveries(ctx workflow.Context, t Tuning, id string, keys []string, res *WebhookBatchResult) error {
	gateways, ids, err := fetchGateways(ctx)
	if err != nil {
		return err
	}
	var split payload.SplitStagedResult
	if err := workflow.ExecuteActivity(longCtx(ctx, t, ""), payload.SplitStaged,
		payload.SplitStagedInput{LoadID: id, Source: "webhook", Keys: keys, Gateways: ids}).Get(ctx, &split); err != nil {
		return fmt.Errorf("split deliveries: %w", err)
	}
	man := split.Manifest
	reportUnknownFields(ctx, man)
	if len(man.Chunks) > 0 {
		var err error
		if workflow.GetVersion(ctx, oneLoadTail, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			// Recorded before the one load tail: the refresh came last.
			err = landLoad(ctx, t, payload.SourceWebhook, man, loadTail{})
			if err == nil {
				err = refreshDimensions(ctx, t, gateways)
			}
		} else {
			err = landLoad(ctx, t, payload.SourceWebhook, man, loadTail{Refresh: true, Gateways: gateways})
		}
		if err != nil {
			return err
		}
	}
	res.Deliveries += len(keys)
	res.Missing += split.Missing
	res.Rows += man.Rows
	res.Quarantined += man.Quarantined
	// Merged: the delivery files and the chunks can go.
	if err := workflow.ExecuteActivity(longCtx(ctx, t, ""), payload.RemoveStaged, keys).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("delivery files left behind", "load", id, "error", err)
	}
	cleanupLoad(ctx, t, id)
	return nil
}
