package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ktpipe/ktpipe/activities"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/staging"
)

// A worker serves the intervals its configuration sets: the alerts
// compare the checkpoint's and the pending loads' ages with them, and a
// compaction interval of 0 turns the compaction-behind alert off.
func TestWorkerMetricsServeTheConfiguredIntervals(t *testing.T) {
	m := workerMetrics(config.Pipeline{ScheduleInterval: time.Hour, CompactEvery: 15 * time.Minute})
	defer m.Close()
	for name, want := range map[string]float64{"ktpipe_compact_interval_seconds": 900, "ktpipe_pull_interval_seconds": 3600} {
		if got := gaugeValue(t, m.Registry(), name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// The worker's refresh reads the compaction's marks from its staging
// store into the gauges, even when the warehouse's part fails.
func TestRefreshReadsThePendingMarks(t *testing.T) {
	root := t.TempDir()
	mark := filepath.Join(root, filepath.FromSlash(activities.PendingKey("load-1")))
	if err := os.MkdirAll(filepath.Dir(mark), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mark, []byte(`{"source":"pull","manifest":{"load_id":"load-1"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	written := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(mark, written, written); err != nil {
		t.Fatal(err)
	}
	m := workerMetrics(config.Pipeline{})
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	audits := 0
	audit := func(context.Context, time.Time) error {
		if audits++; audits == 2 {
			cancel() // the second tick ends the loop
		}
		return errors.New("warehouse unreachable")
	}
	refreshLoop(ctx, audit, staging.Dir{Root: root}, m, time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	want := `
# HELP ktpipe_oldest_pending_load_timestamp_seconds Unix time the oldest pending load's mark was written to staging, at this worker's last successful look (every KTPIPE_METRICS_REFRESH); absent when none is pending. A failed look keeps it.
# TYPE ktpipe_oldest_pending_load_timestamp_seconds gauge
ktpipe_oldest_pending_load_timestamp_seconds ` + strconv.FormatInt(written.Unix(), 10) + `
# HELP ktpipe_pending_loads Loads marked pending in staging (staged, waiting for the compaction to commit them) at this worker's last look, every KTPIPE_METRICS_REFRESH.
# TYPE ktpipe_pending_loads gauge
ktpipe_pending_loads 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "ktpipe_pending_loads", "ktpipe_oldest_pending_load_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

// gaugeValue is the value of the unlabelled gauge name in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s: not served", name)
	return 0
}

// The audit row is read at each slot the next one is due at, every
// tick for auditCatchUp after it (a skipped audit moves the slot), and at
// least every WarehouseGaugeEvery.
func TestNextAuditRead(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		newest time.Time
		every  time.Duration
		want   time.Time
	}{
		{"no audit yet", time.Time{}, 5 * time.Minute, now.Add(WarehouseGaugeEvery)},
		{"next due in 2m", now.Add(-3 * time.Minute), 5 * time.Minute, now.Add(2 * time.Minute)},
		{"next due in 55m", now.Add(-5 * time.Minute), time.Hour, now.Add(WarehouseGaugeEvery)},
		{"due now", now.Add(-5 * time.Minute), 5 * time.Minute, now},
		{"being written", now.Add(-6 * time.Minute), 5 * time.Minute, now},
		{"late: wait for the next slot", now.Add(-8 * time.Minute), 5 * time.Minute, now.Add(2 * time.Minute)},
		{"one audit skipped, the next due now", now.Add(-10*time.Minute - 30*time.Second), 5 * time.Minute, now},
		{"one audit skipped, the next late", now.Add(-14 * time.Minute), 5 * time.Minute, now.Add(time.Minute)},
		{"every minute, due 10s ago", now.Add(-2*time.Minute - 10*time.Second), time.Minute, now},
		{"every minute, late", now.Add(-time.Minute - 45*time.Second), time.Minute, now.Add(15 * time.Second)},
		{"hourly, one skipped, due 1m ago", now.Add(-2*time.Hour - time.Minute), time.Hour, now},
		{"hourly, late", now.Add(-time.Hour - 3*time.Minute), time.Hour, now.Add(WarehouseGaugeEvery)},
	} {
		if got := nextAuditRead(now, c.newest, c.every); !got.Equal(c.want) {
			t.Errorf("%s: next read at %s, want %s", c.name, got.Format(time.TimeOnly), c.want.Format(time.TimeOnly))
		}
	}
}

// An hour of 30 s ticks, audits every 5 minutes whose rows show 40 s
// after their slot, the 12:30 audit skipped and one audit read failing:
// the audit row is read twice an audit (at its slot, and when it shows),
// each row shows in the gauges at the first tick after it does, the
// skipped one costing auditCatchUp of reads. pipeline_state is read every
// WarehouseGaugeEvery (a failed read again at the next tick); a new
// checkpoint shows at the first read after it is written, even when the
// reconcile row of that read fails; the checkpoint's age grows at every
// tick between reads.
func TestGaugeReadsReadWhatIsDue(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 10, 0, time.UTC)
	const tick, every, run = 30 * time.Second, 5 * time.Minute, 40 * time.Second
	skipped := time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
	failAudit := time.Date(2026, 12, 1, 12, 15, 40, 0, time.UTC) // the read that sees 12:15's row
	// newestShown is the newest audit row that shows at now.
	newestShown := func(now time.Time) time.Time {
		slot := now.Add(-run).Truncate(every)
		if slot.Equal(skipped) {
			slot = slot.Add(-every)
		}
		return slot
	}
	oldCheckpoint, newCheckpoint := start.Add(-20*time.Minute), start.Add(17*time.Minute)
	checkpointAt := func(now time.Time) time.Time {
		if now.Before(newCheckpoint) {
			return oldCheckpoint
		}
		return newCheckpoint
	}
	var auditReads, stateReads int
	var shown, lastStateRead time.Time
	var age time.Duration
	failState := true
	g := &gaugeReads{
		auditEvery: every,
		readAudit: func(_ context.Context, now time.Time) (time.Time, error) {
			auditReads++
			if now.Equal(failAudit) {
				return time.Time{}, errors.New("warehouse unreachable")
			}
			shown = newestShown(now)
			return shown, nil
		},
		readState: func(_ context.Context, now time.Time) (time.Time, error) {
			stateReads++
			lastStateRead = now
			if failState && now.After(newCheckpoint) {
				// The checkpoint read, the reconcile row's failed.
				failState = false
				return checkpointAt(now), errors.New("read reconcile_state: unexpected end of JSON input")
			}
			return checkpointAt(now), nil
		},
		setAge: func(d time.Duration) { age = d },
	}
	ticks := 0
	for now := start; now.Before(start.Add(time.Hour)); now = now.Add(tick) {
		ticks++
		_ = g.refresh(context.Background(), now)
		switch cp := now.Add(-age); {
		case !cp.Equal(oldCheckpoint) && !cp.Equal(newCheckpoint):
			t.Fatalf("at %s the checkpoint's age is %s, from no checkpoint", now.Format(time.TimeOnly), age)
		case cp.Equal(oldCheckpoint) && !lastStateRead.Before(newCheckpoint):
			t.Fatalf("at %s the checkpoint's age is %s, from the checkpoint before the one read at %s", now.Format(time.TimeOnly), age, lastStateRead.Format(time.TimeOnly))
		}
		if newest := newestShown(now.Add(-tick)); shown.Before(newest) {
			t.Fatalf("at %s the gauges show the audit of %s, want %s", now.Format(time.TimeOnly), shown.Format(time.TimeOnly), newest.Format(time.TimeOnly))
		}
	}
	audits := int(time.Hour / every)
	t.Logf("%d audit row reads, %d pipeline_state reads in %d ticks", auditReads, stateReads, ticks)
	// Two for each audit that ran; for the skipped one, every tick of
	// auditCatchUp after its slot and the tick after; one for the failed read.
	if want := 2*(audits-1) + int(auditCatchUp(every)/tick) + 1 + 1; auditReads != want {
		t.Errorf("%d audit row reads in %d ticks, want %d", auditReads, ticks, want)
	}
	// Every 5 minutes, one of them failed and read again a tick later.
	if want := int(time.Hour/WarehouseGaugeEvery) + 1; stateReads != want {
		t.Errorf("%d pipeline_state reads in %d ticks, want %d", stateReads, ticks, want)
	}
}
