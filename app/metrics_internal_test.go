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
