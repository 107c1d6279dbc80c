package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ktpipe/ktpipe/activities"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/workflows"
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
	// The audit interval, which KtpipeAuditStale waits three of, is the
	// one the refresh reads at.
	newGaugeReads(nil, m, time.Hour)
	if got := gaugeValue(t, m.Registry(), "ktpipe_audit_interval_seconds"); got != 3600 {
		t.Errorf("ktpipe_audit_interval_seconds = %v, want 3600", got)
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

// The audit row is read at each slot the next one is due at, at every
// 30 s tick for auditCatchUp after it (half the time since the slot
// later, at most 10 s; a skipped audit moves the slot), then backing off
// to half the time since the slot (at each tick again, until then, in
// the interval in which the newest turns workflows.AuditStaleAge old), and at
// least every WarehouseGaugeEvery; past auditHorizon, only that.
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
		{"newest in the future", now.Add(2 * time.Minute), 5 * time.Minute, now.Add(WarehouseGaugeEvery)},
		{"due now", now.Add(-5 * time.Minute), 5 * time.Minute, now},
		{"being written", now.Add(-6 * time.Minute), 5 * time.Minute, now.Add(10 * time.Second)},
		{"at the end of the catch-up", now.Add(-7*time.Minute - 30*time.Second), 5 * time.Minute, now.Add(75 * time.Second)},
		{"slow: half the time since the slot", now.Add(-8 * time.Minute), 5 * time.Minute, now.Add(90 * time.Second)},
		{"slow: no later than the next slot", now.Add(-9*time.Minute - 30*time.Second), 5 * time.Minute, now.Add(30 * time.Second)},
		{"one audit skipped, the next due 30s ago", now.Add(-10*time.Minute - 30*time.Second), 5 * time.Minute, now.Add(10 * time.Second)},
		{"one audit skipped, the next slow: the alert due before the next slot", now.Add(-14 * time.Minute), 5 * time.Minute, now.Add(10 * time.Second)},
		{"one audit skipped, the next slow: at most to the next slot", now.Add(-14*time.Minute - 55*time.Second), 5 * time.Minute, now.Add(5 * time.Second)},
		// At 10-minute audits the alert waits 30 minutes (3 intervals), not 15.
		{"every 10 minutes, slow, the alert 17m away", now.Add(-13 * time.Minute), 10 * time.Minute, now.Add(90 * time.Second)},
		{"every 10 minutes, one skipped, slow, the alert due in 2m", now.Add(-28 * time.Minute), 10 * time.Minute, now.Add(10 * time.Second)},
		{"every 10 minutes, the alert fired 4m ago: backing off", now.Add(-34 * time.Minute), 10 * time.Minute, now.Add(2 * time.Minute)},
		{"stopped: past the horizon", now.Add(-20*time.Minute - 30*time.Second), 5 * time.Minute, now.Add(WarehouseGaugeEvery)},
		{"every minute, due 10s ago", now.Add(-2*time.Minute - 10*time.Second), time.Minute, now.Add(5 * time.Second)},
		{"every minute, missed 10 minutes", now.Add(-10*time.Minute - 10*time.Second), time.Minute, now.Add(5 * time.Second)},
		{"every minute, stopped", now.Add(-16*time.Minute - 10*time.Second), time.Minute, now.Add(WarehouseGaugeEvery)},
		{"every minute, slow", now.Add(-time.Minute - 45*time.Second), time.Minute, now.Add(15 * time.Second)},
		{"every 7 minutes, due 1m ago", now.Add(-8 * time.Minute), 7 * time.Minute, now.Add(10 * time.Second)},
		{"hourly, one skipped, due 1m ago", now.Add(-2*time.Hour - time.Minute), time.Hour, now.Add(10 * time.Second)},
		{"hourly, slow", now.Add(-time.Hour - 4*time.Minute), time.Hour, now.Add(2 * time.Minute)},
		{"hourly, slower", now.Add(-time.Hour - 20*time.Minute), time.Hour, now.Add(WarehouseGaugeEvery)},
		{"daily, two skipped: past the lookback", now.Add(-72*time.Hour - time.Minute), 24 * time.Hour, now.Add(WarehouseGaugeEvery)},
		{"daily, due in 23h", now.Add(-time.Hour), 24 * time.Hour, now.Add(WarehouseGaugeEvery)},
		{"daily, due now", now.Add(-24 * time.Hour), 24 * time.Hour, now},
	} {
		if got := nextAuditRead(now, c.newest, c.every); !got.Equal(c.want) {
			t.Errorf("%s: next read at %s, want %s", c.name, got.Format(time.TimeOnly), c.want.Format(time.TimeOnly))
		}
	}
}

// A read that keeps failing is tried at the next tick, then backing off
// to one every WarehouseGaugeEvery.
func TestRetryAt(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for fails, want := range []time.Duration{0, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		if got := retryAt(now, fails+1).Sub(now); got != want {
			t.Errorf("after %d failures: next read in %s, want %s", fails+1, got, want)
		}
	}
	if got := retryAt(now, 1000).Sub(now); got != WarehouseGaugeEvery {
		t.Errorf("after 1000 failures: next read in %s, want %s", got, WarehouseGaugeEvery)
	}
}

// gaugeRun is an hour of 30 s ticks through gaugeReads, with audits every
// 5 minutes whose rows show run after their slot, the 12:30 audit
// skipped, the audit read that would see 12:15's row failing, a new
// checkpoint at 12:17:10 with a reconcile row every pipeline_state read
// after it fails to decode, and the warehouse unreachable from 12:40 to
// 12:42, failing both reads whole. At every tick it checks that the
// checkpoint's age is from the newest checkpoint read, that the audit
// row that showed lateBy ago is in the gauges unless the last audit read
// failed, and that KtpipeAuditStale (15 minutes) would not fire before
// the next tick. It returns the reads.
func gaugeRun(t *testing.T, run, lateBy time.Duration) (auditReads, stateReads int) {
	t.Helper()
	start := time.Date(2026, 12, 1, 12, 0, 10, 0, time.UTC)
	const tick, every = 30 * time.Second, 5 * time.Minute
	skipped := time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
	// newestShown is the newest audit row that shows at now.
	newestShown := func(now time.Time) time.Time {
		slot := now.Add(-run).Truncate(every)
		if slot.Equal(skipped) {
			slot = slot.Add(-every)
		}
		return slot
	}
	failAudit := time.Date(2026, 12, 1, 12, 15, 0, 0, time.UTC) // the first read that would see this row fails
	oldCheckpoint, newCheckpoint := start.Add(-20*time.Minute), start.Add(17*time.Minute)
	outageFrom, outageTo := start.Add(40*time.Minute-10*time.Second), start.Add(42*time.Minute-10*time.Second)
	unreachable := func(now time.Time) bool { return !now.Before(outageFrom) && now.Before(outageTo) }
	var shown, lastStateRead time.Time
	var age time.Duration
	g := &gaugeReads{
		auditEvery: every,
		readAudit: func(_ context.Context, now time.Time) (time.Time, error) {
			auditReads++
			if unreachable(now) {
				return time.Time{}, errors.New("warehouse unreachable")
			}
			if newestShown(now).Equal(failAudit) && !failAudit.IsZero() {
				failAudit = time.Time{}
				return time.Time{}, errors.New("warehouse unreachable")
			}
			shown = newestShown(now)
			return shown, nil
		},
		readState: func(_ context.Context, now time.Time) (time.Time, error) {
			stateReads++
			switch {
			case unreachable(now):
				return time.Time{}, errors.New("warehouse unreachable")
			case !now.Before(newCheckpoint):
				// A reconcile row the worker cannot decode, from then on.
				lastStateRead = now
				return newCheckpoint, errors.New("read reconcile_state: unexpected end of JSON input")
			}
			lastStateRead = now
			return oldCheckpoint, nil
		},
		setAge: func(d time.Duration) { age = d },
	}
	for now := start; now.Before(start.Add(time.Hour)); now = now.Add(tick) {
		_ = g.refresh(context.Background(), now)
		switch cp := now.Add(-age); {
		case !cp.Equal(oldCheckpoint) && !cp.Equal(newCheckpoint):
			t.Fatalf("at %s the checkpoint's age is %s, from no checkpoint", now.Format(time.TimeOnly), age)
		case cp.Equal(oldCheckpoint) && !lastStateRead.Before(newCheckpoint):
			t.Fatalf("at %s the checkpoint's age is %s, from the checkpoint before the one read at %s", now.Format(time.TimeOnly), age, lastStateRead.Format(time.TimeOnly))
		}
		// While reads fail the gauges keep the row they had; the read
		// counts hold the retries to their times.
		if newest := newestShown(now.Add(-lateBy)); g.auditFails == 0 && shown.Before(newest) {
			t.Fatalf("at %s the gauges show the audit of %s, want %s", now.Format(time.TimeOnly), shown.Format(time.TimeOnly), newest.Format(time.TimeOnly))
		}
		if stale := now.Add(tick).Sub(shown); stale >= workflows.AuditStaleAge(every) {
			t.Fatalf("at %s the gauges show the audit of %s, %s old at the next tick: KtpipeAuditStale fires", now.Format(time.TimeOnly), shown.Format(time.TimeOnly), stale)
		}
	}
	t.Logf("run %s: %d audit row reads, %d pipeline_state reads", run, auditReads, stateReads)
	return auditReads, stateReads
}

// Audits whose rows show 50 s after their slot (ticks fall 10 s after
// each slot): each row is in the gauges at the first tick after it
// shows, and the reads are counted exactly.
func TestGaugeReadsReadWhatIsDue(t *testing.T) {
	auditReads, stateReads := gaugeRun(t, 50*time.Second, 30*time.Second)
	// Each of the 11 audits that ran: at its slot's tick (+10 s), +40 s
	// and +70 s, when its row shows. The skipped 12:30: each tick of its
	// 2.5 minutes of catch-up (+10 s to +130 s, 5), at +160 s (then half
	// the time since the slot later: +240 s), at +250 s (then the 12:35
	// slot). The failed read of 12:15, again at the next tick: 1. The
	// 12:40 audit's in the outage: 12:40:10, 12:40:40 and 12:41:10 fail,
	// the next 1 minute later (12:42:10) sees its row: 1 more than 3.
	if want := 11*3 + 5 + 2 + 1 + 1; auditReads != want {
		t.Errorf("%d audit row reads, want %d", auditReads, want)
	}
	// Every 5 minutes from 12:00:10: 12:00:10 to 12:35:10 (8; those from
	// 12:20:10 failed on the reconcile row but got the checkpoint, so they
	// wait 5 minutes as well); in the outage 12:40:10, 12:40:40 and
	// 12:41:10 (3), backing off to 12:42:10 (1), then every 5 minutes
	// from there (12:47:10 to 12:57:10, 3): 15.
	if want := 8 + 3 + 1 + 3; stateReads != want {
		t.Errorf("%d pipeline_state reads, want %d", stateReads, want)
	}
}

// Audits slower than the catch-up (rows showing 3 minutes after their
// slot), one of them skipped: each row shows at most half its run and a
// tick late, and KtpipeAuditStale does not fire.
func TestGaugeReadsShowASlowAudit(t *testing.T) {
	const run = 3 * time.Minute
	auditReads, _ := gaugeRun(t, run, run/2+30*time.Second)
	// Each of the 12 slots, the skipped one too: each tick of its catch-up
	// (+10 s to +130 s, 5), at +160 s, then half the time since the slot
	// later, at +250 s, when the row has shown (or the next slot comes):
	// 7. The 12:35 slot's, after the skipped one, the newest turning 15
	// minutes old at 12:40: each tick from +10 s to its row at +190 s,
	// also 7. The failed read of 12:15, again at the next tick: 1. The 12:40
	// slot's in the outage: +10 s, +40 s and +70 s fail, the next at
	// +130 s, +160 s and +250 s: 1 fewer than 7.
	if want := 12*7 + 1 - 1; auditReads != want {
		t.Errorf("%d audit row reads, want %d", auditReads, want)
	}
}

// Audits that run 4½ minutes, of 5: after the skipped 12:30, the 12:35
// audit's row shows at 12:39:30, 14½ minutes after the newest (12:25),
// and must be read before KtpipeAuditStale fires on 12:25 at 12:40.
func TestGaugeReadsShowAnAuditBeforeTheAlert(t *testing.T) {
	const run = 4*time.Minute + 30*time.Second
	auditReads, _ := gaugeRun(t, run, run/2+30*time.Second)
	// A slot's reads: each tick of its catch-up (+10 s to +130 s, 5), at
	// +160 s and +250 s; its row shows at +270 s, and the next slot's
	// first read sees it: 7. So for 10 slots: the skipped 12:30's sees no
	// row, and the 12:20 slot's first read, failing, is tried again at
	// +40 s, a read due then anyway. The 12:35 slot's, at each tick from
	// +10 s to its row at +280 s (12:39:40): 10. The 12:40 slot's in the
	// outage: +10 s, +40 s and +70 s fail, then +130 s, +160 s and
	// +250 s: 6.
	if want := 10*7 + 10 + 6; auditReads != want {
		t.Errorf("%d audit row reads, want %d", auditReads, want)
	}
}

// A checkpoint written by a worker whose clock is ahead is 0 s old, not
// negative, until this worker's clock passes it.
func TestCheckpointAgeIsNeverNegative(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	age := time.Duration(-1)
	g := &gaugeReads{
		auditEvery: 5 * time.Minute,
		readAudit:  func(context.Context, time.Time) (time.Time, error) { return time.Time{}, nil },
		readState:  func(context.Context, time.Time) (time.Time, error) { return now.Add(time.Minute), nil },
		setAge:     func(d time.Duration) { age = d },
	}
	for _, c := range []struct {
		at   time.Time
		want time.Duration
	}{{now, 0}, {now.Add(90 * time.Second), 30 * time.Second}} {
		if err := g.refresh(context.Background(), c.at); err != nil || age != c.want {
			t.Errorf("at %s: age %s (%v), want %s", c.at.Format(time.TimeOnly), age, err, c.want)
		}
	}
}

// At 1 s ticks, with 1-minute audits that have stopped: each slot's
// catch-up reads at steps of half the time since the slot, at most
// catchUpStep, and the reads look for a row up to the alert's 15 minutes
// past the newest, then every WarehouseGaugeEvery.
func TestGaugeReadsPaceShortTicks(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	newest := start.Add(-time.Minute) // the next row is due at start
	var reads []time.Duration
	g := &gaugeReads{
		auditEvery: time.Minute,
		readAudit: func(_ context.Context, now time.Time) (time.Time, error) {
			reads = append(reads, now.Sub(start))
			return newest, nil
		},
		readState: func(context.Context, time.Time) (time.Time, error) { return time.Time{}, nil },
		setAge:    func(time.Duration) {},
	}
	for now := start; now.Before(start.Add(30 * time.Minute)); now = now.Add(time.Second) {
		_ = g.refresh(context.Background(), now)
	}
	// A slot's reads, in seconds after it: each half the time since the
	// slot later (0 and 1 at the next tick), 27 → 37 at most 10 s, past
	// the catch-up (30 s) 37 → 55.5 (the next tick, 56), then the next
	// slot; in the slot 14 minutes past the newest, which turns 15
	// minutes old before the next, at most 10 s to the next slot.
	var want []time.Duration
	for slot := range 15 { // the slots 1 to 15 minutes past the newest
		secs := []int{0, 1, 2, 3, 5, 8, 12, 18, 27, 37, 56}
		if slot == 13 {
			secs = []int{0, 1, 2, 3, 5, 8, 12, 18, 27, 37, 47, 57}
		}
		for _, sec := range secs {
			want = append(want, time.Duration(slot)*time.Minute+time.Duration(sec)*time.Second)
		}
	}
	want = append(want, 15*time.Minute, 20*time.Minute, 25*time.Minute) // past the horizon
	if !slices.Equal(reads, want) {
		t.Errorf("%d audit row reads at %v,\nwant %d at %v", len(reads), reads, len(want), want)
	}
}
