package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// The compaction: with it on (KTPIPE_COMPACT_EVERY), the pull and the
// webhook batches stage their chunks and mark their loads pending
// instead of committing them, and Compact, on its own schedule, commits
// every pending load together. On BigQuery a commit costs what it reads
// of the fact table's partitions, whatever the rows it adds: one commit a
// few hours instead of one a pull batch and one a webhook minute makes
// that cost grow with the data instead of with the number of loads (see
// the README, "What the design costs on BigQuery"). Meanwhile the live
// view shows the loads' rows: webhook batches stream them, and the pull
// streams its chunks into live_events.

// DefaultCompactEvery is the compaction's interval when it is on.
const DefaultCompactEvery = 4 * time.Hour

// Bounds of one compaction run: CompactLoads loads and CompactChunks
// chunks a round, one MergeLoads (three transactions of
// warehouse.MaxBatchChunks, unless its first load alone is larger), and
// compactRounds of those, or compactHistoryEvents events of history,
// before it continues as new. A round adds about 20 events, and its
// one-by-one retry of a round about 12 a load: the history stays far
// below Temporal's 51,200 however far behind the compaction is.
const (
	CompactLoads         = 500
	CompactChunks        = 1000
	compactRounds        = 10
	compactHistoryEvents = 10_000
)

// CompactInput configures one compaction run.
type CompactInput struct {
	Tuning Tuning `json:"tuning,omitzero"`
	// Set by the workflow itself when it continues as new.
	Totals CompactResult `json:"totals,omitzero"`
}

// CompactResult sums up the compaction's runs.
type CompactResult struct {
	Loads       int      `json:"loads"`
	Rows        int64    `json:"rows"`
	Quarantined int64    `json:"quarantined"`
	Failed      []string `json:"failed,omitempty"` // loads that could not be committed: replay them
}

// CompactProgress is what the progress query of a compaction returns.
type CompactProgress struct {
	CompactResult
	Phase string `json:"phase"`
}

// Compact commits the pending loads (see DeferLoad) in rounds of up to
// CompactLoads loads and CompactChunks chunks: it commits a round's loads
// together, checks each against its manifest, counts it, and only then
// removes its mark and staged files, so a crash anywhere commits the
// round again, which adds nothing. A load the round cannot commit (its
// staging lost and its files gone) is committed alone, and one that
// fails alone is left pending and named in the error: replay it.
func Compact(ctx workflow.Context, in CompactInput) (CompactResult, error) {
	res := in.Totals
	phase := "listing pending loads"
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (CompactProgress, error) {
		return CompactProgress{CompactResult: res, Phase: phase}, nil
	}); err != nil {
		return res, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet("compact")); err != nil {
		return res, err
	}
	t := in.Tuning.withDefaults()
	show := func(p string) {
		phase = p
		details(ctx, "compaction of pending loads", "phase: "+phase,
			fmt.Sprintf("%d loads committed (%d rows, %d quarantined)", res.Loads, res.Rows, res.Quarantined))
	}
	var failed []string // loads this run could not commit: passed over, named at the end
	committed := false
	for round := 0; ; round++ {
		show("listing pending loads")
		var pending payload.PendingLoadsResult
		if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.PendingLoads,
			payload.PendingLoadsInput{MaxLoads: CompactLoads, MaxChunks: CompactChunks, Exclude: failed}).Get(ctx, &pending); err != nil {
			return res, fmt.Errorf("list pending loads: %w", err)
		}
		// Unreadable marks: passed over by the listings after this one,
		// named at the end.
		failed = append(failed, pending.Unreadable...)
		res.Failed = append(res.Failed, pending.Unreadable...)
		if len(pending.Loads) == 0 {
			break
		}
		show(fmt.Sprintf("committing %d loads", len(pending.Loads)))
		done, bad, err := commitPending(ctx, t, pending.Loads)
		if err != nil {
			// Not one load's fault (BigQuery away, a quota): the loads stay
			// pending, and the next run commits them.
			return res, err
		}
		failed = append(failed, bad...)
		res.Failed = append(res.Failed, bad...)
		if len(done) > 0 {
			ids := make([]string, len(done))
			for i, p := range done {
				ids[i] = p.Manifest.LoadID
				countLoad(ctx, p.Source, p.Manifest)
			}
			if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.FinishLoads, ids).Get(ctx, nil); err != nil {
				return res, fmt.Errorf("finish %d loads: %w", len(ids), err)
			}
			for _, p := range done {
				res.Loads++
				res.Rows += p.Manifest.Rows
				res.Quarantined += p.Manifest.Quarantined
			}
			committed = true
		}
		if !pending.More {
			break
		}
		// Far behind: continue as new before the history grows large,
		// unless a load failed (the run then ends naming it).
		if round == compactRounds-1 || workflow.GetInfo(ctx).GetCurrentHistoryLength() > compactHistoryEvents {
			if len(failed) > 0 {
				break
			}
			if committed {
				show("refreshing dimensions")
				if err := refreshAfterCompaction(ctx, t); err != nil {
					return res, err
				}
			}
			return res, workflow.NewContinueAsNewError(ctx, Compact, CompactInput{Tuning: in.Tuning, Totals: res})
		}
	}
	if committed {
		show("refreshing dimensions")
		if err := refreshAfterCompaction(ctx, t); err != nil {
			return res, err
		}
	}
	show("done")
	if len(failed) > 0 {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%d loads could not be committed and stay pending: %s; replay each (ktpipe replay --load-id <id>; it removes the mark, readable or not)",
				len(failed), listed(failed, 20)), payload.ErrTypeIncomplete, nil)
	}
	return res, nil
}

// listed joins up to n ids, and says how many more there are.
func listed(ids []string, n int) string {
	if len(ids) <= n {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:n], ", "), len(ids)-n)
}

// commitPending commits loads together and checks each. When that fails
// for a reason of the loads' own (a non-retryable error: a check that
// does not add up, staging lost with its files), it commits them one by
// one, so that one broken load does not hold the others: it returns the
// loads committed and checked, and the ids of those that failed alone.
// Any other failure is returned.
func commitPending(ctx workflow.Context, t Tuning, loads []payload.PendingLoad) (done []payload.PendingLoad, failed []string, err error) {
	err = mergeAndCheck(ctx, t, loads)
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		return loads, nil, nil
	case !errors.As(err, &appErr) || !appErr.NonRetryable():
		return nil, nil, err
	case len(loads) == 1:
		workflow.GetLogger(ctx).Error("pending load could not be committed; replay it", "load", loads[0].Manifest.LoadID, "error", err)
		return nil, []string{loads[0].Manifest.LoadID}, nil
	}
	workflow.GetLogger(ctx).Warn("committing pending loads one by one", "loads", len(loads), "error", err)
	for _, p := range loads {
		d, f, err := commitPending(ctx, t, []payload.PendingLoad{p})
		if err != nil {
			return nil, nil, err
		}
		done, failed = append(done, d...), append(failed, f...)
	}
	return done, failed, nil
}

// mergeAndCheck commits loads in one MergeLoads and checks every one
// against its manifest.
func mergeAndCheck(ctx workflow.Context, t Tuning, loads []payload.PendingLoad) error {
	in := payload.MergeLoadsInput{}
	ids := make([]string, len(loads))
	for i, p := range loads {
		in.Loads = append(in.Loads, payload.MergeInput{LoadID: p.Manifest.LoadID, Source: p.Source, Chunks: p.Manifest.Chunks})
		ids[i] = p.Manifest.LoadID
	}
	if err := workflow.ExecuteActivity(longCtx(ctx, t, MergeQueueSuffix), payload.MergeLoads, in).Get(ctx, nil); err != nil {
		return fmt.Errorf("merge %d pending loads: %w", len(loads), err)
	}
	var checks map[string]payload.Completeness
	if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.CheckLoads, ids).Get(ctx, &checks); err != nil {
		return fmt.Errorf("check %d pending loads: %w", len(loads), err)
	}
	for _, p := range loads {
		if err := completeness(p.Manifest, checks[p.Manifest.LoadID]); err != nil {
			return err
		}
	}
	return nil
}

// refreshAfterCompaction refreshes the dimensions with the gateways the
// API lists now.
func refreshAfterCompaction(ctx workflow.Context, t Tuning) error {
	gateways, _, err := fetchGateways(ctx)
	if err != nil {
		return err
	}
	return refreshDimensions(ctx, t, gateways)
}

// deferLoad stages a load's chunks and marks it pending for the
// compaction, in place of merging it (landLoad). With landLive, it then
// streams the chunks into live_events for the live view (the pull; a
// webhook batch streamed its deliveries already, unless a landing missed
// some: loadDeliveries): within deferLiveCeiling, and a landing that
// fails is logged, since the compaction does not depend on it.
func deferLoad(ctx workflow.Context, t Tuning, source string, man payload.Manifest, landLive bool) error {
	if err := stageChunks(ctx, t, man.LoadID, man.Chunks, nil); err != nil {
		return err
	}
	if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.DeferLoad, payload.PendingLoad{Source: source, Manifest: man}).Get(ctx, nil); err != nil {
		return fmt.Errorf("mark %s pending: %w", man.LoadID, err)
	}
	if landLive {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: deferLiveCeiling, ScheduleToCloseTimeout: deferLiveCeiling, HeartbeatTimeout: t.HeartbeatTimeout,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: liveAttempts, NonRetryableErrorTypes: nonRetryable},
		})
		var rows int64
		if err := workflow.ExecuteActivity(actx, payload.LandLiveChunks, payload.ChunksInput{LoadID: man.LoadID, Chunks: man.Chunks}).Get(ctx, &rows); err != nil {
			workflow.GetLogger(ctx).Warn("live landing failed; the load's rows show once compacted", "load", man.LoadID, "error", err)
		}
	}
	return nil
}

// deferLiveCeiling bounds a pull batch's live landing, attempts
// included: 100 requests of 500 rows for a batch of 50,000 events. The
// audit counts on no landing outlasting payload.MaxLiveLanding.
const deferLiveCeiling = payload.MaxLiveLanding
