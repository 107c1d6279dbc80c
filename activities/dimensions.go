package activities

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/warehouse"
)

// RefreshDimensions rebuilds the dimensions (each replaced whole from the
// gateway list, the price table, the user map and what commits added to
// fact_usage and fact_users), first folding fact_usage when it has grown
// past its bound (warehouse.FoldUsage). Calls on one worker are
// coalesced: see refresher.
func (a *Activities) RefreshDimensions(ctx context.Context, gateways []payload.Gateway) error {
	defer keepAlive(ctx, nil)()
	key, err := gatewaysKey(gateways)
	if err != nil {
		return classifyWarehouse(ctx, "refresh dimensions", err)
	}
	err = a.dims.do(ctx, key, func(ctx context.Context) error {
		if f, err := a.Warehouse.FoldUsage(ctx); err != nil && ctx.Err() == nil {
			if err := foldFailed(f, err); err != nil {
				return err
			}
			activity.GetLogger(ctx).Warn("fact_usage not folded; the refresh reads it unfolded and the next one folds", "rows", f.Rows, "bound", f.Bound, "error", err)
		}
		return a.Warehouse.RefreshDimensions(ctx, gateways, a.Prices, a.Users)
	})
	return classifyWarehouse(ctx, "refresh dimensions", err)
}

// maxUnfolded is how many times its bound fact_usage may grow past its
// last fold while folds fail, before a refresh fails too.
const maxUnfolded = 10

// foldFailed says what a failed fold does to the refresh. The fold only
// makes the reads smaller: when it fails once (on BigQuery, another
// worker's fold at the same moment cancels one of the two), the refresh
// reads the table unfolded, to the same dimensions, and the next refresh
// folds; failing would fail a load that has committed. A fold that keeps
// failing (a permission missing, say) would let the reads grow with the
// commits again: past maxUnfolded times the bound, the refresh fails
// with the fold's error, and the loads show it.
func foldFailed(f warehouse.Fold, err error) error {
	// A bound past MaxInt64/maxUnfolded has no tolerance to overflow.
	if err == nil || f.Bound > math.MaxInt64/maxUnfolded || f.Rows <= maxUnfolded*f.Bound {
		return nil
	}
	return fmt.Errorf("fact_usage has %d rows since its last fold, over %d times its bound of %d, and folding it fails: %w", f.Rows, maxUnfolded, f.Bound, err)
}

// gatewaysKey names a gateway list: only refreshes of the same list are
// coalesced.
func gatewaysKey(gateways []payload.Gateway) (string, error) {
	b, err := json.Marshal(gateways)
	if err != nil {
		return "", fmt.Errorf("gateway list: %w", err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b)), nil
}

// refresher coalesces dimension refreshes. A refresh rebuilds every
// dimension from what commits added (fact_usage, fact_users) as it is
// when the refresh starts, so one refresh that starts after a load
// committed serves every load committed before it. Each load ends with a
// refresh; loads that finish together (webhook batches beside a pull, a
// backlog after an outage) would each read those tables again. Here,
// per key, at most one refresh runs and at most one waits to start; a
// caller joins the waiting one, which starts after the caller asked, so
// it sees the caller's load. On BigQuery that saves reads and jobs; on
// the emulator, which runs one statement at a time, it is what keeps the
// queue from growing with every load.
//
// The zero value is ready to use.
type refresher struct {
	mu      sync.Mutex
	running map[string]*refreshRun // started, not ended
	waiting map[string]*refreshRun // not started: new callers join it
}

type refreshRun struct {
	done   chan struct{} // closed when the run ended; err is then set
	err    error
	joined int // callers that joined this run (under refresher.mu)
}

// errRefreshAbandoned: the caller that was to start a coalesced refresh
// was cancelled before it could; the callers that joined it retry.
var errRefreshAbandoned = errors.New("coalesced dimension refresh abandoned before it started (its activity was cancelled); retry")

func (r *refresher) do(ctx context.Context, key string, refresh func(context.Context) error) error {
	r.mu.Lock()
	if r.running == nil {
		r.running, r.waiting = map[string]*refreshRun{}, map[string]*refreshRun{}
	}
	if run := r.waiting[key]; run != nil {
		run.joined++
		r.mu.Unlock()
		return run.wait(ctx)
	}
	run := &refreshRun{done: make(chan struct{})}
	r.waiting[key] = run
	busy := r.running[key]
	r.mu.Unlock()

	if busy != nil {
		select {
		case <-busy.done:
		case <-ctx.Done():
			r.mu.Lock()
			delete(r.waiting, key)
			r.mu.Unlock()
			run.end(errRefreshAbandoned)
			return ctx.Err()
		}
	}
	r.mu.Lock()
	delete(r.waiting, key)
	r.running[key] = run
	r.mu.Unlock()

	err := refresh(ctx)

	r.mu.Lock()
	delete(r.running, key)
	r.mu.Unlock()
	run.end(err)
	return err
}

func (run *refreshRun) end(err error) {
	run.err = err
	close(run.done)
}

func (run *refreshRun) wait(ctx context.Context) error {
	select {
	case <-run.done:
		return run.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FetchGateways lists the known gateways (validation and dim_gateway).
// An empty list is an error, not a validation input: every valid event
// would be quarantined as of an unknown gateway and reconcile would see
// no gap (fact + quarantine = count). It fails the load visibly and
// without retrying (an organisation without gateways, or a token of the
// wrong one, does not heal by itself; the next scheduled pull or a
// resumed backfill tries again).
func (a *Activities) FetchGateways(ctx context.Context) ([]payload.Gateway, error) {
	defer keepAlive(ctx, nil)()
	gws, err := a.API.Gateways(ctx)
	if err != nil {
		return nil, classify("list gateways", err)
	}
	if len(gws) == 0 {
		return nil, temporal.NewNonRetryableApplicationError(
			"list gateways: the API listed no gateways; refusing to validate against an empty list, which would quarantine every event (check the API token's organisation)",
			payload.ErrTypeNoGateways, nil)
	}
	out := make([]payload.Gateway, len(gws))
	for i, g := range gws {
		out[i] = payload.Gateway{ID: g.ID, Name: g.Name, Team: g.Team, Environment: g.Environment}
	}
	return out, nil
}
