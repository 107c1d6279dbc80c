package app

import (
	"context"
	"encoding/json"
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
// audit row: an audit older than this is stale anyway (the audit-stale
// alert fires long before).
const auditLookback = 48 * time.Hour

// RefreshGauges reads what the warehouse says into m's gauges: the
// newest audit row, the pull checkpoint's age and the last scheduled
// reconcile's ratio. Every worker does it on its own, so every worker
// Prometheus scrapes shows the same figures. Gauges with nothing to show
// (no audit yet) keep their last value; an error names what failed.
func RefreshGauges(ctx context.Context, wh *warehouse.Warehouse, m *metrics.Metrics, now time.Time) error {
	row, err := wh.LatestAudit(ctx, now.Add(-auditLookback))
	if err != nil {
		return err
	}
	if !row.AuditedAt.IsZero() {
		m.SetAudit(metrics.Audit{At: row.AuditedAt, LagSeconds: row.IngestionLagSeconds, FactDuplicateRatio: row.FactDuplicateRatio,
			SourceResendRatio: row.SourceResendRatio, SchemaViolations: row.SchemaViolations, CompletenessRatio: row.CompletenessRatio})
	}
	at, err := wh.CheckpointTime(ctx, workflows.DefaultCheckpointKey)
	if err != nil {
		return err
	}
	if !at.IsZero() {
		m.SetCheckpointAge(now.Sub(at))
	}
	v, err := wh.Checkpoint(ctx, workflows.ReconcileStateKey)
	if err != nil {
		return err
	}
	if v != "" {
		var st workflows.ReconcileState
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			return fmt.Errorf("read %s: %w", workflows.ReconcileStateKey, err)
		}
		m.SetReconcileCompleteness(st.Ratio)
	}
	return nil
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

// refreshGauges runs RefreshGauges, then reads the compaction's marks
// (activities.RefreshPendingGauges), every interval until ctx ends, each
// within its own bound, so a slow warehouse does not hide the marks; a
// failed refresh is logged and tried again at the next tick (the gauges
// keep their values, and the audit-stale alert tells when that lasts).
func refreshGauges(ctx context.Context, wh *warehouse.Warehouse, store staging.Store, m *metrics.Metrics, every time.Duration, logger *slog.Logger) {
	audit := func(ctx context.Context, now time.Time) error { return RefreshGauges(ctx, wh, m, now) }
	refreshLoop(ctx, audit, store, m, every, logger)
}

// refreshLoop is refreshGauges with the warehouse's part a function, so
// the rest is tested without one.
func refreshLoop(ctx context.Context, audit func(context.Context, time.Time) error, store staging.Store, m *metrics.Metrics, every time.Duration, logger *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, max(every, 30*time.Second))
		if err := audit(rctx, time.Now()); err != nil && ctx.Err() == nil {
			logger.Warn("metrics: refreshing the audit gauges failed", "error", err)
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
