package workflows

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// DeliverySignal carries the staging key of one webhook delivery to its
// WebhookBatch: what receivers send by default.
const DeliverySignal = "delivery"

// DeliveriesSignal carries the staging keys of several deliveries to their WebhookBatch.
const DeliveriesSignal = "deliveries"

// sharedSignalsVersion: batches read DeliveriesSignal. A batch that began
// before (its first task ran on an older worker) leaves it unread, as the
// older worker did, so its replay stays deterministic; the deliveries it
// leaves are still staged, and the hourly pull loads their events. The
// other way round is not safe (an older worker running a later task of a
// batch that reads it), hence KTPIPE_WEBHOOK_SHARED_SIGNALS.
const sharedSignalsVersion = "shared-signals"

// DefaultWebhookWindow is how long a batch collects deliveries by default.
const DefaultWebhookWindow = time.Minute

// DefaultLiveEvery is how often a batch streams the deliveries it has
// received since the last time into live_events, for the live view: the
// deliveries of the last 2 s are queryable a few seconds after arrival,
// while the batch still commits once a window.
const DefaultLiveEvery = 2 * time.Second

// WebhookBatchInput configures one batch of webhook deliveries.
type WebhookBatchInput struct {
	// Window is how long the batch collects deliveries before it loads
	// them (default 1m): one load per window, not per delivery, keeps
	// BigQuery jobs and DML far below their quotas.
	Window time.Duration `json:"window,omitempty"`
	// LiveEvery is how often the batch streams new deliveries into
	// live_events (zero: DefaultLiveEvery; negative: never).
	LiveEvery time.Duration `json:"live_every,omitempty"`
	Tuning    Tuning        `json:"tuning,omitzero"`
	// Defer: stage the batch's load and leave its commit to the
	// compaction (Compact).
	Defer bool `json:"defer,omitempty"`
	// LiveOnly: stream the deliveries into live_events and load nothing;
	// the hourly pull is the path of record for the same events
	// (KTPIPE_WEBHOOK_LIVE_ONLY). Needs a live landing (LiveEvery not
	// negative): without one the batch loads its deliveries as before.
	LiveOnly bool `json:"live_only,omitempty"`
}

// WebhookBatchResult sums up a batch.
type WebhookBatchResult struct {
	Deliveries  int   `json:"deliveries"`
	Missing     int   `json:"missing"` // deliveries whose file an earlier batch had loaded and removed
	Rows        int64 `json:"rows"`
	Quarantined int64 `json:"quarantined"`
	LiveRows    int64 `json:"live_rows,omitempty"` // rows streamed for the live view (at least once)
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
	var together workflow.ReceiveChannel // nil: DeliveriesSignal unread
	if workflow.GetVersion(ctx, sharedSignalsVersion, workflow.DefaultVersion, 1) == 1 {
		together = workflow.GetSignalChannel(ctx, DeliveriesSignal)
	}
	seen := map[string]bool{}
	var keys, unlanded []string
	add := func(key string) { // a retried delivery is signalled again
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
			unlanded = append(unlanded, key)
		}
	}
	windowEnd := workflow.NewTimer(ctx, in.Window) // before the gateways: the API's queue must not stretch the window
	var live *liveLanding
	if workflow.GetVersion(ctx, liveLandingVersion, workflow.DefaultVersion, 1) == 1 && in.LiveEvery >= 0 {
		every := in.LiveEvery
		if every == 0 {
			every = DefaultLiveEvery
		}
		gateways, ids, err := fetchGateways(ctx)
		if err != nil {
			return res, err
		}
		// At most maxLandings a window: each adds about a dozen events to
		// the batch's history, which Temporal caps at 51,200.
		every = max(min(every, in.Window), in.Window/maxLandings)
		live = &liveLanding{every: every, gateways: gateways, ids: ids, res: &res}
	}
	receive := func(c workflow.ReceiveChannel, _ bool) {
		var key string
		c.Receive(ctx, &key)
		add(key)
	}
	receiveMany := func(c workflow.ReceiveChannel, _ bool) {
		var many []string
		c.Receive(ctx, &many)
		for _, k := range many {
			add(k)
		}
	}
	closed := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(deliveries, receive)
	if together != nil {
		sel.AddReceive(together, receiveMany)
	}
	sel.AddFuture(windowEnd, func(workflow.Future) { closed = true })
	for !closed {
		if live != nil && len(unlanded) > 0 {
			live.schedule(ctx, sel, &unlanded)
		}
		sel.Select(ctx)
	}
	if live != nil {
		// The window's last deliveries are streamed beside the commit,
		// which never waits for a landing.
		live.finish(ctx, &unlanded)
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
		for together != nil {
			var many []string
			if !together.ReceiveAsync(&many) {
				break
			}
			for _, k := range many {
				add(k)
			}
		}
		if len(keys) == 0 {
			if live != nil && len(live.inFlight) > 0 {
				// Waiting for the landings can take long enough for a
				// delivery to be signalled: look again after.
				live.drain(ctx)
				continue
			}
			return res, nil
		}
		if live != nil && len(unlanded) > 0 {
			// Signalled after the window's last landing: never streamed.
			live.miss(unlanded)
			unlanded = nil
		}
		sort.Strings(keys)
		if in.LiveOnly && live != nil && workflow.GetVersion(ctx, liveOnlyVersion, workflow.DefaultVersion, 1) == 1 {
			showDeliveries(ctx, t, keys, live, &res)
			keys = nil
			continue
		}
		id := loadID(info.WorkflowExecution.ID, info.WorkflowExecution.RunID[:8], fmt.Sprint(round))
		if err := loadDeliveries(ctx, t, id, keys, live, in.Defer, &res); err != nil {
			return res, err
		}
		keys = nil
	}
}

// oneLoadTail: webhook batches moved the dimension refresh before the
// check, into the order every load shares (landLoad).
const oneLoadTail = "one-load-tail"

// deferredLiveGap: a deferred batch waits for its landings before it
// stages, and streams its load's chunks when a delivery missed them.
const deferredLiveGap = "deferred-live-gap"

// loadDeliveries loads one round of delivery files as load id. With a
// live landing, it validates with the gateways the landing used, so the
// commit keeps exactly the events the live view showed.
func loadDeliveries(ctx workflow.Context, t Tuning, id string, keys []string, live *liveLanding, deferred bool, res *WebhookBatchResult) error {
	var gateways []payload.Gateway
	var ids []string
	if live != nil {
		gateways, ids = live.gateways, live.ids
	} else {
		var err error
		if gateways, ids, err = fetchGateways(ctx); err != nil {
			return err
		}
	}
	var split payload.SplitStagedResult
	if err := workflow.ExecuteActivity(longCtx(ctx, t, ""), payload.SplitStaged,
		payload.SplitStagedInput{LoadID: id, Source: "webhook", Keys: keys, Gateways: ids}).Get(ctx, &split); err != nil {
		return fmt.Errorf("split deliveries: %w", err)
	}
	man := split.Manifest
	reportUnknownFields(ctx, man)
	if len(man.Chunks) > 0 && deferred {
		// The batch streamed its deliveries (unless KTPIPE_WEBHOOK_LIVE is
		// 0), but those of a landing that failed, or still ran when
		// RemoveStaged took its files, or never ran, would show only once
		// the compaction commits them, hours later. So wait for the
		// landings while the files are still staged, then stream the
		// load's chunks if one failed, as the pull does (live_events is
		// at least once; the view dedups).
		again := false
		if live != nil && workflow.GetVersion(ctx, deferredLiveGap, workflow.DefaultVersion, 1) == 1 {
			live.drain(ctx)
			again, live.missed = live.missed, false
			live.takeMissed() // the load's chunks stream instead
		}
		if err := deferLoad(ctx, t, payload.SourceWebhook, man, again); err != nil {
			return err
		}
	} else if len(man.Chunks) > 0 {
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
	// Merged (or staged and marked pending): the delivery files can go,
	// and the chunks too unless the compaction still needs them.
	if err := workflow.ExecuteActivity(longCtx(ctx, t, ""), payload.RemoveStaged, keys).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("delivery files left behind", "load", id, "error", err)
	}
	if !deferred || len(man.Chunks) == 0 {
		cleanupLoad(ctx, t, id)
	}
	return nil
}

// liveOnlyVersion: a batch with LiveOnly streams its deliveries and loads
// nothing. One begun by a worker that ignored the input (it predates it)
// loads them, as it began to.
const liveOnlyVersion = "live-only"

// showDeliveries ends one round of a live-only batch: it waits for the
// landings, streams once more the deliveries a landing missed (one that
// failed, or signalled after the last), then removes the delivery files.
// Nothing is loaded: the pull brings the same events into fact_ai_event
// (and invalid ones into quarantine), so a delivery the live view lacks
// after this shows there once the pull's load is committed. A worker
// that predates LiveOnly ignores it and loads the deliveries, which
// costs a load; but it cannot replay a batch a later worker began live
// only, hence KTPIPE_WEBHOOK_LIVE_ONLY only once every worker runs this
// version.
func showDeliveries(ctx workflow.Context, t Tuning, keys []string, live *liveLanding, res *WebhookBatchResult) {
	live.drain(ctx)
	if missed := live.takeMissed(); len(missed) > 0 {
		live.land(ctx, missed)
		live.drain(ctx)
		if again := live.takeMissed(); len(again) > 0 {
			workflow.GetLogger(ctx).Warn("deliveries not streamed; they show once the pull's load of their events commits", "deliveries", len(again))
		}
	}
	live.missed = false
	res.Deliveries += len(keys)
	if err := workflow.ExecuteActivity(longCtx(ctx, t, ""), payload.RemoveStaged, keys).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("delivery files left behind", "deliveries", len(keys), "error", err)
	}
}

// liveLandingVersion: batches stream their deliveries into live_events
// every LiveEvery while they collect.
const liveLandingVersion = "live-landing"

// liveLanding streams a batch's new deliveries into live_events, one
// LandLive at a time, at most once every `every`, while the batch
// collects; then once more beside the commit. A landing that fails is
// logged and its deliveries are left to the commit: the live view is a
// convenience, the fact table's exactly once does not depend on it, and
// the commit never waits for a landing. A deferred load's commit is
// hours away, so it waits instead (loadDeliveries).
type liveLanding struct {
	every    time.Duration
	gateways []payload.Gateway
	ids      []string
	res      *WebhookBatchResult
	rounds   int

	ticking    bool                // a timer armed
	cancelTick workflow.CancelFunc // disarms it
	inFlight   []workflow.Future   // landings started and not yet counted
	landing    [][]string          // the deliveries of each landing in inFlight
	missed     bool                // a delivery not known streamed since the last deferred load
	unshown    []string            // those deliveries, for a live-only batch (takeMissed)
}

// miss records deliveries not known streamed.
func (l *liveLanding) miss(keys []string) {
	l.missed = true
	l.unshown = append(l.unshown, keys...)
}

// takeMissed returns the deliveries missed since the last call, and
// forgets them.
func (l *liveLanding) takeMissed() []string {
	keys := l.unshown
	l.unshown = nil
	return keys
}

// schedule arms the next landing of *unlanded, unless a timer or a
// landing is pending.
func (l *liveLanding) schedule(ctx workflow.Context, sel workflow.Selector, unlanded *[]string) {
	if l.ticking || len(l.inFlight) > 0 {
		return
	}
	l.ticking = true
	tctx, cancel := workflow.WithCancel(ctx)
	l.cancelTick = cancel
	sel.AddFuture(workflow.NewTimer(tctx, l.every), func(f workflow.Future) {
		l.ticking = false
		cancel()
		if f.Get(ctx, nil) != nil {
			return // disarmed by finish
		}
		landing := l.land(ctx, *unlanded)
		*unlanded = nil
		sel.AddFuture(landing, func(f workflow.Future) { l.count(ctx, f) })
	})
}

// finish disarms the timer and starts the last landing, without waiting.
func (l *liveLanding) finish(ctx workflow.Context, unlanded *[]string) {
	if l.ticking {
		l.cancelTick()
		l.ticking = false
	}
	if len(*unlanded) > 0 {
		l.land(ctx, *unlanded)
		*unlanded = nil
	}
}

// drain counts the landings still pending, so the batch completes with
// no activity of its own running; each is bounded by liveCeiling.
func (l *liveLanding) drain(ctx workflow.Context) {
	for len(l.inFlight) > 0 {
		l.count(ctx, l.inFlight[0])
	}
}

func (l *liveLanding) land(ctx workflow.Context, keys []string) workflow.Future {
	info := workflow.GetInfo(ctx)
	id := loadID(info.WorkflowExecution.ID, info.WorkflowExecution.RunID[:8], "live", fmt.Sprint(l.rounds))
	l.rounds++
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    liveCeiling,
		ScheduleToCloseTimeout: liveCeiling,
		HeartbeatTimeout:       DefaultHeartbeatTimeout,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: liveAttempts, NonRetryableErrorTypes: []string{payload.ErrTypeMalformed}},
	})
	f := workflow.ExecuteActivity(actx, payload.LandLive, payload.LandLiveInput{LoadID: id, Keys: keys, Gateways: l.ids})
	l.inFlight = append(l.inFlight, f)
	l.landing = append(l.landing, keys)
	return f
}

// count adds a finished landing's rows to the result, once.
func (l *liveLanding) count(ctx workflow.Context, f workflow.Future) {
	i := slices.Index(l.inFlight, f)
	if i < 0 {
		return
	}
	keys := l.landing[i]
	l.inFlight = slices.Delete(l.inFlight, i, i+1)
	l.landing = slices.Delete(l.landing, i, i+1)
	var r payload.LandLiveResult
	if err := f.Get(ctx, &r); err != nil {
		workflow.GetLogger(ctx).Warn("live landing failed; its deliveries show when their events commit", "error", err)
		l.miss(keys)
		return
	}
	l.res.LiveRows += r.Rows
}

// liveAttempts and liveCeiling bound one landing: past them its
// deliveries wait for the commit. A landing resumes from the delivery
// its last attempt heartbeat. At most payload.MaxLiveLanding, which the
// audit counts on.
const (
	liveAttempts = 3
	liveCeiling  = min(time.Minute, payload.MaxLiveLanding)
)

// maxLandings bounds the landings of one batch: about 2,400 history
// events, beside at most 10,000 signals (app.DefaultMaxDeliveriesPerBatch).
const maxLandings = 200
