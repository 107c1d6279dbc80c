package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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
// event in [Floor, Until).
func (a *Activities) NewestSourceEvent(ctx context.Context, in payload.NewestInput) (time.Time, error) {
	defer keepAlive(ctx, nil)()
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
	if in.After.Before(in.Floor) {
		in.After = time.Time{} // search from the floor, within the call bound
	}
	lo := in.Floor
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
	// Events exist at or after lo, none at or after hi.
	hi := in.Until
	for hi.Sub(lo) > time.Second {
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
