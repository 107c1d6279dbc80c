package activities

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/payload"
)

// CountSourceByWindow asks the API for the events of the whole range in
// one call, grouped by date and hour (the Events API's group_by, which the
// data engineer guide advises for aggregates), and sums the hours of each
// window. The range and step must be whole hours: group_by's finest group
// is the UTC hour. Each element is the window's `requests`: the events
// the API aggregates (the contract does not say whether those a loader
// quarantines are among them; the simulator leaves them out).
func (a *Activities) CountSourceByWindow(ctx context.Context, in payload.Steps) ([]int64, error) {
	defer keepAlive(ctx, nil)()
	if !payload.HourAligned(in) {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("count by window: %s..%s by %s is not in whole UTC hours", in.Since, in.Until, in.Step), payload.ErrTypeBadInput, nil)
	}
	if h := in.Until.Sub(in.Since) / time.Hour; h > payload.MaxGroupedHours {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("count by window: %d hours is more than %d in one call", h, payload.MaxGroupedHours), payload.ErrTypeBadInput, nil)
	}
	rows, err := a.API.GroupBy(ctx, keeptrusts.Window{Since: in.Since.UTC().Format(time.RFC3339), Until: in.Until}, "date", "hour")
	if err != nil {
		return nil, classify("count source by hour", err)
	}
	n := int((in.Until.Sub(in.Since) + in.Step - 1) / in.Step)
	counts := make([]int64, n)
	for _, r := range rows {
		day, _ := r["date"].(string)
		hour, okH := groupHour(r["hour"])
		req, okR := r["requests"].(float64)
		d, err := time.Parse(time.DateOnly, day)
		if err != nil || !okH || !okR || hour < 0 || hour > 23 || req < 0 {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("count source by hour: a group_by row with date %q, hour %v, requests %v is not one the contract describes", day, r["hour"], r["requests"]), payload.ErrTypeMalformed, nil)
		}
		at := d.Add(time.Duration(hour) * time.Hour)
		if at.Before(in.Since) || !at.Before(in.Until) {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("count source by hour: the API grouped hour %s, outside %s..%s", at.Format(time.RFC3339), in.Since.UTC().Format(time.RFC3339), in.Until.UTC().Format(time.RFC3339)), payload.ErrTypeMalformed, nil)
		}
		counts[int(at.Sub(in.Since)/in.Step)] += int64(req)
	}
	return counts, nil
}

// groupHour reads a group_by row's hour: the contract says "hour (0-23,
// UTC)" and gives the rows no schema, so a number or its digits.
func groupHour(v any) (float64, bool) {
	switch h := v.(type) {
	case float64:
		return h, true
	case string:
		n, err := strconv.Atoi(h)
		return float64(n), err == nil
	}
	return 0, false
}

// CountSource asks the API how many events the window holds.
func (a *Activities) CountSource(ctx context.Context, w payload.Window) (int64, error) {
	defer keepAlive(ctx, nil)()
	n, err := a.API.Count(ctx, keeptrusts.Window{Since: w.Since.UTC().Format(time.RFC3339Nano), Until: w.Until})
	return n, classify("count source", err)
}

// CountWarehouse counts fact and quarantine rows for the window.
func (a *Activities) CountWarehouse(ctx context.Context, w payload.Window) (payload.WarehouseCount, error) {
	defer keepAlive(ctx, nil)()
	wh, err := a.Warehouse.CountWindow(ctx, w.Since, w.Until)
	return wh, classifyWarehouse(ctx, "count warehouse", err)
}

// CountFact counts the fact rows of the window alone: what a reconcile
// against group_by's counts of valid events compares.
func (a *Activities) CountFact(ctx context.Context, w payload.Window) (int64, error) {
	defer keepAlive(ctx, nil)()
	n, err := a.Warehouse.CountFact(ctx, w.Since, w.Until)
	return n, classifyWarehouse(ctx, "count fact", err)
}

// CountFactByWindow counts the fact rows of each window of a range of at
// most payload.MaxCountedSpan in one query: a reconcile's hours of a
// day, compared with group_by's counts of valid events.
func (a *Activities) CountFactByWindow(ctx context.Context, in payload.Steps) ([]int64, error) {
	defer keepAlive(ctx, nil)()
	if err := payload.CheckCountSteps(in); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("count fact by window: "+err.Error(), payload.ErrTypeBadInput, nil)
	}
	n, err := a.Warehouse.CountFactByWindow(ctx, in)
	return n, classifyWarehouse(ctx, "count fact by window", err)
}
