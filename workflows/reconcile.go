package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// ReconcileInput is a range to compare, step by step.
type ReconcileInput struct {
	Since time.Time     `json:"since"`
	Until time.Time     `json:"until"`
	Step  time.Duration `json:"step"` // default 1h
	// ReplayGaps starts a Replay of each window with an unexplained gap.
	ReplayGaps bool   `json:"replayGaps,omitempty"`
	Tuning     Tuning `json:"tuning,omitzero"`
}

// WindowCount compares one window: the API's count against what the
// warehouse holds.
type WindowCount struct {
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	Source      int64     `json:"source"`      // events the API counts
	Fact        int64     `json:"fact"`        // rows in fact_ai_event
	Quarantined int64     `json:"quarantined"` // quarantined records whose timestamp is in the window (not counted, 0, with GroupBy)
	Gap         int64     `json:"gap"`         // Source - Fact - Quarantined (with GroupBy: Source - Fact, unless Recounted)
	// Recounted: group_by's count differed from fact, so the window was
	// counted again with count=true against fact and quarantine (strictly:
	// no unplaced record explains its gap).
	Recounted bool `json:"recounted,omitempty"`
}

// ReconcileResult lists every window and the gaps.
type ReconcileResult struct {
	Windows []WindowCount `json:"windows"`
	// Unplaced quarantined records have no usable timestamp, so the API
	// counts them in some window the warehouse cannot name; a gap up to
	// this many is explained by them.
	Unplaced int64         `json:"unplaced"`
	Gaps     []WindowCount `json:"gaps"`    // windows with a gap larger than Unplaced
	Replays  []string      `json:"replays"` // Replay workflow ids started for those
	// GroupBy: Source is the API's group_by requests over the whole range
	// in one call, and a window whose count equals its Fact rows is
	// whole (Gap = Source - Fact); one that differs is Recounted as
	// without GroupBy. Otherwise Source is count=true per window, which
	// counts invalid records too.
	GroupBy bool `json:"groupBy"`
}

// Completeness sums the windows: the events the API counted, what the
// warehouse holds against them, and the ratio (1 when the API counted
// none). With count=true per window the API counts invalid records too,
// so the quarantine counts, and up to Unplaced quarantined records
// without a usable timestamp explain a shortfall; a group_by window
// counts its fact rows only, or, recounted with count=true, fact and
// quarantine, and no unplaced record explains a shortfall. The one rule for the daily
// reconcile's metric and for status.
func (r ReconcileResult) Completeness() (source, warehouse int64, ratio float64) {
	for _, w := range r.Windows {
		source += w.Source
		warehouse += w.Fact
		if !r.GroupBy || w.Recounted {
			warehouse += w.Quarantined
		}
	}
	if miss := source - warehouse; miss > 0 && !r.GroupBy {
		warehouse += min(miss, r.Unplaced)
	}
	ratio = 1
	if source > 0 {
		ratio = float64(warehouse) / float64(source)
	}
	return source, warehouse, ratio
}

// MaxReconcileWindows bounds one Reconcile run.
const MaxReconcileWindows = 2000

// reconcileGroupByChange versions the source count: one group_by call per
// range instead of one count per window. Runs recorded before it replay
// the per-window path.
const reconcileGroupByChange = "reconcile-group-by"

// reconcileUnplacedChange versions which window's unplaced count the
// reconcile keeps (the largest, not the last).
const reconcileUnplacedChange = "reconcile-unplaced-max"

// reconcileFactOnlyChange versions what a group_by reconcile counts in
// the warehouse: fact alone (CountFact), not the quarantine too, which
// it does not compare and which read 30 days of it a window.
const reconcileFactOnlyChange = "reconcile-group-by-fact-only"

// reconcileFactByDayChange versions how a group_by reconcile counts fact:
// a day's windows in one query (CountFactByWindow), not a query each,
// which read the day's partition once a window.
const reconcileFactByDayChange = "reconcile-fact-by-day"

// reconcileRecountChange versions the recount of a group_by window whose
// count differs from fact: count=true against fact and quarantine. Its
// rule was settled within the series that introduced it, before any
// release; version 1 is the rule below.
const reconcileRecountChange = "reconcile-group-by-recount"

// Reconcile compares the API's count of events with the warehouse per
// window: group_by=date,hour over the whole range in one call where the
// windows are whole hours, count=true per window otherwise.
func Reconcile(ctx workflow.Context, in ReconcileInput) (ReconcileResult, error) {
	if err := checkInput(ctx, in.Check); err != nil {
		return ReconcileResult{}, err
	}
	if in.Step <= 0 {
		in.Step = time.Hour
	}
	// Each window costs two activities in this run's history: beyond
	// MaxReconcileWindows, reconcile by a coarser step first and then
	// the windows with a gap by a finer one.
	if n := in.Until.Sub(in.Since) / in.Step; n > MaxReconcileWindows {
		return ReconcileResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"%d windows of %s is more than %d: use a larger step, then reconcile the windows with a gap by a smaller one",
			n, in.Step, MaxReconcileWindows), payload.ErrTypeBadInput, nil)
	}
	tune := in.Tuning.withDefaults()
	var res ReconcileResult
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (ReconcileResult, error) { return res, nil }); err != nil {
		return res, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet("reconcile"),
		WindowStartKey.ValueSet(in.Since), WindowEndKey.ValueSet(in.Until)); err != nil {
		return res, err
	}
	// One API call for the whole range where group_by's hours can serve
	// the windows; a range or step in parts of hours, or longer than one
	// call may ask for, is counted window by window.
	steps := payload.Steps{Since: in.Since, Until: in.Until, Step: in.Step}
	var bySource []int64
	if workflow.GetVersion(ctx, reconcileGroupByChange, workflow.DefaultVersion, 1) == 1 &&
		payload.HourAligned(steps) && in.Until.Sub(in.Since) <= payload.MaxGroupedHours*time.Hour {
		if err := workflow.ExecuteActivity(apiCtx(ctx), payload.CountSourceByWindow, steps).Get(ctx, &bySource); err != nil {
			return res, fmt.Errorf("count source by hour: %w", err)
		}
		res.GroupBy = true
	}
	// The warehouse counts unplaced records quarantined at most 30 days
	// before a window (warehouse.CountQuarantined), so the count differs
	// by window: the largest, the first window's, is what may explain a
	// gap in any of them. Before this change the last window's was kept
	// (then the same for every window).
	unplacedMax := workflow.GetVersion(ctx, reconcileUnplacedChange, workflow.DefaultVersion, 1) == 1
	// group_by's count is compared with fact rows alone, so the quarantine
	// is not counted (Quarantined and Unplaced stay 0) but in a window
	// recounted (below).
	factOnly := res.GroupBy && workflow.GetVersion(ctx, reconcileFactOnlyChange, workflow.DefaultVersion, 1) == 1
	// The contract does not say whether group_by aggregates the events a
	// loader quarantines (the simulator leaves them out; a server may
	// not). A window whose group_by count equals its fact rows has lost
	// nothing either way; for one that differs the API is asked
	// count=true, every event of the window: when that is more, group_by
	// left the invalid out and its gap stands; otherwise the window is
	// counted against fact and quarantine, strictly, as the audit counts
	// its hours: an unplaced record explains no gap (a count=true
	// reconcile's allowance would let invalid records that arrived later
	// hide an event lost here).
	recount := factOnly && workflow.GetVersion(ctx, reconcileRecountChange, workflow.DefaultVersion, 1) == 1
	var byFact []int64
	if factOnly && in.Step <= payload.MaxCountedSpan && workflow.GetVersion(ctx, reconcileFactByDayChange, workflow.DefaultVersion, 1) == 1 {
		var err error
		if byFact, err = countFactByDay(ctx, tune, steps); err != nil {
			return res, err
		}
	}
	for i, t := 0, in.Since; t.Before(in.Until); i, t = i+1, t.Add(in.Step) {
		end := t.Add(in.Step)
		if end.After(in.Until) {
			end = in.Until
		}
		w := payload.Window{Since: t, Until: end}
		var src int64
		var wh payload.WarehouseCount
		if res.GroupBy {
			if i >= len(bySource) {
				return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("count source by hour: %d windows counted, want %d", len(bySource), i+1), payload.ErrTypeBadInput, nil)
			}
			src = bySource[i]
		} else if err := workflow.ExecuteActivity(apiCtx(ctx), payload.CountSource, w).Get(ctx, &src); err != nil {
			return res, fmt.Errorf("count source %s: %w", t, err)
		}
		if byFact != nil {
			wh.Fact = byFact[i]
		} else if factOnly {
			if err := workflow.ExecuteActivity(warehouseCtx(ctx, tune), payload.CountFact, w).Get(ctx, &wh.Fact); err != nil {
				return res, fmt.Errorf("count fact %s: %w", t, err)
			}
		} else if err := workflow.ExecuteActivity(warehouseCtx(ctx, tune), payload.CountWarehouse, w).Get(ctx, &wh); err != nil {
			return res, fmt.Errorf("count warehouse %s: %w", t, err)
		}
		recounted := recount && src != wh.Fact
		if recounted {
			var all int64
			var counted payload.WarehouseCount
			if err := workflow.ExecuteActivity(apiCtx(ctx), payload.CountSource, w).Get(ctx, &all); err != nil {
				return res, fmt.Errorf("count source %s: %w", t, err)
			}
			if err := workflow.ExecuteActivity(warehouseCtx(ctx, tune), payload.CountWarehouse, w).Get(ctx, &counted); err != nil {
				return res, fmt.Errorf("count warehouse %s: %w", t, err)
			}
			if all > src {
				// count=true counts events group_by left out: this
				// server's group_by aggregates the valid events only (as
				// the simulator's does), so its count against fact is
				// exact, stricter than count=true's with its allowance.
				recounted = false
			} else {
				src, wh = all, counted
			}
		}
		if unplacedMax {
			res.Unplaced = max(res.Unplaced, wh.Unplaced)
		} else {
			res.Unplaced = wh.Unplaced
		}
		details(ctx, ReconcileSummary(in), fmt.Sprintf("counted up to %s", end.UTC().Format(time.RFC3339)))
		gap := src - wh.Fact - wh.Quarantined
		if res.GroupBy && !recounted {
			gap = src - wh.Fact
		}
		res.Windows = append(res.Windows, WindowCount{Since: t, Until: end, Source: src, Fact: wh.Fact, Quarantined: wh.Quarantined, Gap: gap, Recounted: recounted})
	}
	for _, w := range res.Windows {
		if w.Gap < 0 || (res.GroupBy && w.Gap > 0) || w.Gap > res.Unplaced {
			res.Gaps = append(res.Gaps, w)
		}
	}
	details(ctx, ReconcileSummary(in), fmt.Sprintf("%d windows counted, %d with an unexplained gap", len(res.Windows), len(res.Gaps)))
	if in.ReplayGaps {
		for _, g := range res.Gaps {
			if g.Gap <= 0 {
				continue // more in the warehouse than the source counts: not a replay's job
			}
			id := fmt.Sprintf("%s/replay-%s", workflow.GetInfo(ctx).WorkflowExecution.ID, g.Since.UTC().Format("20060102T150405Z"))
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id})
			if err := workflow.ExecuteChildWorkflow(cctx, Replay, ReplayInput{Since: g.Since, Until: g.Until, Tuning: in.Tuning}).Get(ctx, nil); err != nil {
				return res, fmt.Errorf("replay %s: %w", id, err)
			}
			res.Replays = append(res.Replays, id)
		}
	}
	return res, nil
}

// countFactByDay counts the fact rows of each window of steps (a step of
// at most payload.MaxCountedSpan), a query for as many whole windows as
// fit in that span and in one UTC day where they can.
func countFactByDay(ctx workflow.Context, tune Tuning, steps payload.Steps) ([]int64, error) {
	per := int(payload.MaxCountedSpan / steps.Step)
	var counts []int64
	for t := steps.Since; t.Before(steps.Until); {
		end := t.Add(time.Duration(per) * steps.Step)
		// Up to the next UTC midnight when a window ends there: a query
		// then reads one date's partition, not two.
		if midnight := t.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour); midnight.Before(end) && midnight.Sub(steps.Since)%steps.Step == 0 {
			end = midnight
		}
		if end.After(steps.Until) {
			end = steps.Until
		}
		var part []int64
		if err := workflow.ExecuteActivity(warehouseCtx(ctx, tune), payload.CountFactByWindow, payload.Steps{Since: t, Until: end, Step: steps.Step}).Get(ctx, &part); err != nil {
			return nil, fmt.Errorf("count fact %s..%s: %w", t.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), err)
		}
		counts = append(counts, part...)
		t = end
	}
	if n := int((steps.Until.Sub(steps.Since) + steps.Step - 1) / steps.Step); len(counts) != n {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("count fact by window: %d windows counted, want %d", len(counts), n), payload.ErrTypeBadInput, nil)
	}
	return counts, nil
}
