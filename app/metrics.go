package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ktpipe/ktpipe/activities"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// APIObserver counts a Keeptrusts client's requests into m
// (keeptrusts.WithObserver).
func APIObserver(m *metrics.Metrics) keeptrusts.Observer { return apiObserver{m} }

type apiObserver struct{ m *metrics.Metrics }

func (o apiObserver) Request(op string, status int, err error) { o.m.APIRequest(op, status, err) }
func (o apiObserver) RetryAfter(d time.Duration)               { o.m.RetryAfter(d) }

// auditLookback bounds the partitions the refresh reads for the newest
// audit row: an audit older than this is stale anyway (at audit
// intervals up to 16 h the audit-stale alert fires before; longer ones
// are not looked for further, auditHorizon).
const auditLookback = 48 * time.Hour

// RefreshAuditGauges reads the newest audit row into m's gauges and
// returns its time (zero when there is none).
func RefreshAuditGauges(ctx context.Context, wh *warehouse.Warehouse, m *metrics.Metrics, now time.Time) (time.Time, error) {
	row, err := wh.LatestAudit(ctx, now.Add(-auditLookback))
	if err != nil {
		return time.Time{}, err
	}
	if !row.AuditedAt.IsZero() {
		m.SetAudit(metrics.Audit{At: row.AuditedAt, LagSeconds: row.IngestionLagSeconds, FactDuplicateRatio: row.FactDuplicateRatio,
			SourceResendRatio: row.SourceResendRatio, SchemaViolations: row.SchemaViolations, CompletenessRatio: row.CompletenessRatio})
	}
	return row.AuditedAt, nil
}

// RefreshCheckpointGauges reads pipeline_state into m's gauges: the pull
// checkpoint's age at now, and the last scheduled reconcile's ratio. It
// returns when the checkpoint was written (zero when never), from which
// the age grows between reads.
func RefreshCheckpointGauges(ctx context.Context, wh *warehouse.Warehouse, m *metrics.Metrics, now time.Time) (time.Time, error) {
	at, err := wh.CheckpointTime(ctx, workflows.DefaultCheckpointKey)
	if err != nil {
		return time.Time{}, err
	}
	if !at.IsZero() {
		m.SetCheckpointAge(now.Sub(at))
	}
	v, err := wh.Checkpoint(ctx, workflows.ReconcileStateKey)
	if err != nil {
		return at, err
	}
	if v != "" {
		var st workflows.ReconcileState
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			return at, fmt.Errorf("read %s: %w", workflows.ReconcileStateKey, err)
		}
		m.SetReconcileCompleteness(st.Ratio)
	}
	return at, nil
}

// WarehouseGaugeEvery is how often, at most, a worker reads the
// warehouse's gauge rows when none is due. Each read is a query, which
// BigQuery bills 10 MB at least a table: read every 30 s, the three
// gauge queries of every worker were most of what operating ktpipe was
// billed at 1M events a day (README, "What operating it reads").
const WarehouseGaugeEvery = 5 * time.Minute

// gaugeReads decides which of the warehouse's gauge rows a worker's
// refresh reads (nextAuditRead): the newest audit row at each slot the
// next one is due at and after it until it shows, and at least every
// WarehouseGaugeEvery; pipeline_state (a checkpoint a pull, a reconcile
// a day) every WarehouseGaugeEvery. The checkpoint's age is set from the
// checkpoint's time at every tick, so it grows between reads. A row
// written out of turn (an audit started by ktpipe schedule audit, a new
// checkpoint) shows within WarehouseGaugeEvery plus a tick, so workers
// may differ by that much. A failed read is tried again at the next
// tick, then backing off (retryAt).
type gaugeReads struct {
	auditEvery time.Duration
	readAudit  func(ctx context.Context, now time.Time) (time.Time, error)
	readState  func(ctx context.Context, now time.Time) (time.Time, error)
	setAge     func(time.Duration)

	auditNext, stateNext   time.Time // zero: read at the first tick
	auditFails, stateFails int       // failed reads in a row
	checkpoint             time.Time // the pull checkpoint's time, as last read
}

// newGaugeReads also serves auditEvery (ktpipe_audit_interval_seconds):
// KtpipeAuditStale waits workflows.AuditStaleAge of it, which the reads are timed by.
func newGaugeReads(wh *warehouse.Warehouse, m *metrics.Metrics, auditEvery time.Duration) *gaugeReads {
	m.SetAuditInterval(auditEvery)
	return &gaugeReads{
		auditEvery: auditEvery,
		readAudit: func(ctx context.Context, now time.Time) (time.Time, error) {
			return RefreshAuditGauges(ctx, wh, m, now)
		},
		readState: func(ctx context.Context, now time.Time) (time.Time, error) {
			return RefreshCheckpointGauges(ctx, wh, m, now)
		},
		setAge: m.SetCheckpointAge,
	}
}

// refresh reads what is due at now. The checkpoint's time a
// pipeline_state read got is kept even when the read then failed on the
// reconcile row (a row written once a day, read again with the
// checkpoint), so the age stays true; pipeline_state only grows, so a
// read that finds no checkpoint keeps the one held.
func (g *gaugeReads) refresh(ctx context.Context, now time.Time) error {
	var errs []error
	if !now.Before(g.auditNext) {
		at, err := g.readAudit(ctx, now)
		if err != nil {
			g.auditFails++
			g.auditNext = retryAt(now, g.auditFails)
			errs = append(errs, fmt.Errorf("audit gauges: %w", err))
		} else {
			g.auditFails = 0
			g.auditNext = nextAuditRead(now, at, g.auditEvery)
		}
	}
	if !now.Before(g.stateNext) {
		at, err := g.readState(ctx, now)
		if !at.IsZero() {
			g.checkpoint = at
		}
		switch {
		case err != nil && at.IsZero():
			g.stateFails++
			g.stateNext = retryAt(now, g.stateFails)
		default:
			g.stateFails = 0
			g.stateNext = now.Add(WarehouseGaugeEvery)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("checkpoint gauges: %w", err))
		}
	}
	if !g.checkpoint.IsZero() {
		g.setAge(max(0, now.Sub(g.checkpoint))) // a writer's clock ahead of this one's
	}
	return errors.Join(errs...)
}

// retryAt is when to read again after fails failed reads in a row: at
// the next tick after the first, then 30 s, 1, 2 and 4 minutes later, at
// most WarehouseGaugeEvery, so a read that keeps failing (a warehouse
// down, a row it cannot decode) costs a query every 5 minutes, not one a
// tick. The gauges keep their values meanwhile.
func retryAt(now time.Time, fails int) time.Time {
	if fails <= 1 {
		return now
	}
	return now.Add(min(WarehouseGaugeEvery, 15*time.Second<<min(fails-1, 5)))
}

// catchUpStep is the longest step between reads in the catch-up: the
// next tick at the default 30 s refresh, at most 6 reads a minute at a
// shorter one.
const catchUpStep = 10 * time.Second

// auditCatchUp is how long after a slot an audit row is due at the
// refresh looks for it at short steps: half an audit interval, at most
// half of WarehouseGaugeEvery. An audit's row shows when the audit ends,
// seconds after its slot.
func auditCatchUp(every time.Duration) time.Duration {
	return min(every, WarehouseGaugeEvery) / 2
}

// auditHorizon is how long past the newest row the refresh still looks
// for the next at its slots: KtpipeAuditStale's age, and no further than
// the read looks back (auditLookback: past it the row is not seen). Past
// it audits are not running (the schedule paused, or its runs failing),
// and every WarehouseGaugeEvery is often enough.
func auditHorizon(every time.Duration) time.Duration {
	return min(workflows.AuditStaleAge(every), auditLookback)
}

// nextAuditRead is when to read the audit row again, having read at now
// the newest row, of time newest (zero: none). The slots the next row is
// due at are newest plus whole audit intervals (a skipped audit moves it
// to the next slot). It is half the time since the latest slot later, so
// a slow audit's row shows at most half its run and a tick late: within
// auditCatchUp of the slot at most catchUpStep later, after it never
// after the next slot, and never later than WarehouseGaugeEvery from
// now, which is also the rule once the slot is past auditHorizon. In
// the interval in which the newest row turns workflows.AuditStaleAge old (after
// one audit skipped, at 5-minute audits), a row that shows before then
// must be read before the alert fires on the newest, so until then the
// steps stay at most catchUpStep (after it, the alert has fired).
func nextAuditRead(now, newest time.Time, every time.Duration) time.Time {
	every = max(every, time.Minute) // config's least; 0 would divide by it
	later := now.Add(WarehouseGaugeEvery)
	if newest.IsZero() {
		return later
	}
	slot := newest.Add(every)
	if slot.After(now) {
		return minTime(slot, later)
	}
	slot = slot.Add(now.Sub(slot).Truncate(every)) // the latest slot at or before now
	since := now.Sub(slot)
	if slot.Sub(newest) > auditHorizon(every) {
		return later
	}
	step := since / 2
	if staleAt := newest.Add(workflows.AuditStaleAge(every)); since < auditCatchUp(every) || now.Before(staleAt) && !slot.Add(every).Before(staleAt) {
		step = min(step, catchUpStep)
	}
	return minTime(minTime(now.Add(step), slot.Add(every)), later)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// workerMetrics makes a worker's registry with the gauges its
// configuration sets: the pull's interval (the stall alert) and the
// compaction's (the compaction-behind alert).
func workerMetrics(p config.Pipeline) *metrics.Metrics {
	m := metrics.New()
	m.SetPullInterval(p.ScheduleInterval)
	m.SetCompactInterval(p.CompactEvery)
	return m
}

// refreshGauges reads the warehouse's gauge rows gaugeReads finds due
// (auditEvery is the audit schedule's interval), then the compaction's
// marks (activities.RefreshPendingGauges), every interval until ctx ends, each
// within its own bound, so a slow warehouse does not hide the marks; a
// failed refresh is logged and tried again at the next tick (the gauges
// keep their values, and the audit-stale alert tells when that lasts).
func refreshGauges(ctx context.Context, wh *warehouse.Warehouse, store staging.Store, m *metrics.Metrics, every, auditEvery time.Duration, logger *slog.Logger) {
	refreshLoop(ctx, newGaugeReads(wh, m, auditEvery).refresh, store, m, every, logger)
}

// refreshLoop is refreshGauges with the warehouse's part a function, so
// the rest is tested without one.
func refreshLoop(ctx context.Context, readWarehouse func(context.Context, time.Time) error, store staging.Store, m *metrics.Metrics, every time.Duration, logger *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, max(every, 30*time.Second))
		if err := readWarehouse(rctx, time.Now()); err != nil && ctx.Err() == nil {
			logger.Warn("metrics: refreshing the warehouse gauges failed", "error", err)
		}
		cancel()
		rctx, cancel = context.WithTimeout(ctx, max(every, 30*time.Second))
		if err := activities.RefreshPendingGauges(rctx, store, m); err != nil && ctx.Err() == nil {
			logger.Warn("metrics: reading the compaction's pending loads failed", "error", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
