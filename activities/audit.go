package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/payload"
)

// AuditWarehouse measures the warehouse for an audit: newest event,
// duplicates in the fact table, resends and schema violations in the
// interval, fact + quarantine in the completeness window, the counts
// carried from an earlier audit when nothing was committed since (see
// warehouse.MeasureAudit). Read only, so a retry is harmless.
func (a *Activities) AuditWarehouse(ctx context.Context, in payload.AuditWarehouseInput) (payload.AuditWarehouseResult, error) {
	defer keepAlive(ctx, nil)()
	res, err := a.Warehouse.MeasureAudit(ctx, in)
	return res, classifyWarehouse(ctx, "audit", err)
}

// maxNewestCalls bounds NewestSourceEvent's count calls: 2^22 s is 48
// days, more than any floor an audit uses, at one-second resolution.
const maxNewestCalls = 24

// NewestSourceEvent finds the newest event timestamp the API holds, to
// one second, with count=true calls only (the API has no "newest"): one
// call when it holds nothing newer than After, else a bisection of
// [After, Until), at most maxNewestCalls calls. Zero when the API has no
// event in [Floor, Until). The bisection heartbeats its bounds, and an
// attempt after one that timed out goes on from them: at a few seconds a
// call, its ~20 calls outlast one attempt's minute, and starting over
// each time would never finish.
func (a *Activities) NewestSourceEvent(ctx context.Context, in payload.NewestInput) (time.Time, error) {
	var at atomic.Pointer[newestBounds]
	defer keepAlive(ctx, func() any { return at.Load() })()
	calls := 0
	has := func(since time.Time) (bool, error) {
		calls++
		if calls > maxNewestCalls {
			return false, fmt.Errorf("newest source event: more than %d count calls", maxNewestCalls)
		}
		n, err := a.API.Count(ctx, keeptrusts.Window{Since: since.UTC().Format(time.RFC3339Nano), Until: in.Until})
		if err != nil {
			return false, classify("count source", err)
		}
		return n > 0, nil
	}
	// Events exist at or after lo, none at or after hi.
	lo, hi := in.Floor, in.Until
	var prev newestBounds
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &prev) == nil && prev.valid(in) {
		lo, hi = prev.Lo, prev.Hi
	} else {
		if in.After.Before(in.Floor) {
			in.After = time.Time{} // search from the floor, within the call bound
		}
		if !in.After.IsZero() {
			// Timestamps are kept to the microsecond: anything after After.
			newer, err := has(in.After.Add(time.Microsecond))
			if err != nil || !newer {
				return in.After, err
			}
			lo = in.After
		} else if any, err := has(lo); err != nil || !any {
			return time.Time{}, err
		}
	}
	for hi.Sub(lo) > time.Second {
		b := newestBounds{Lo: lo, Hi: hi}
		at.Store(&b)
		activity.RecordHeartbeat(ctx, b)
		mid := lo.Add(hi.Sub(lo) / 2)
		ok, err := has(mid)
		if err != nil {
			return time.Time{}, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// newestBounds is how far NewestSourceEvent's bisection got: events at
// or after Lo, none at or after Hi.
type newestBounds struct{ Lo, Hi time.Time }

// valid says b can go on for in: within its range, in order.
func (b newestBounds) valid(in payload.NewestInput) bool {
	return !b.Lo.IsZero() && b.Lo.Before(b.Hi) && !b.Lo.Before(in.Floor) && !b.Hi.After(in.Until)
}

// WriteAudit appends the audit's row; the same row twice is written once.
func (a *Activities) WriteAudit(ctx context.Context, row payload.AuditRow) error {
	defer keepAlive(ctx, nil)()
	return classifyWarehouse(ctx, "write audit", a.Warehouse.AppendAudit(ctx, row))
}

// RecordReconcile stores a scheduled reconcile's outcome (appended, the
// newest wins: a retry is harmless).
func (a *Activities) RecordReconcile(ctx context.Context, st payload.ReconcileState) error {
	defer keepAlive(ctx, nil)()
	b, err := json.Marshal(st)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("encode reconcile state: "+err.Error(), payload.ErrTypeMalformed, err)
	}
	return classifyWarehouse(ctx, "record reconcile", a.Warehouse.SetCheckpoint(ctx, payload.ReconcileStateKey, string(b)))
}
