package metrics_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/metrics/wfmetrics"
	"github.com/ktpipe/ktpipe/warehouse"
)

func TestConsecutiveAPIFailures(t *testing.T) {
	m := metrics.New()
	defer m.Close()
	gauge := func() float64 {
		t.Helper()
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "ktpipe_api_consecutive_failures" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("ktpipe_api_consecutive_failures not served")
		return 0
	}
	m.APIRequest("list events", 500, nil)
	m.APIRequest("list events", 0, errors.New("connection refused"))
	m.APIRequest("list events", 429, nil)
	m.APIRequest("count events", 503, nil)
	if got := gauge(); got != 4 {
		t.Fatalf("after 4 failures: gauge %v, want 4", got)
	}
	m.APIRequest("get export", 409, nil) // an answer per the contract: the API works
	if got := gauge(); got != 0 {
		t.Fatalf("after an answer: gauge %v, want 0", got)
	}
	m.RetryAfter(2 * time.Second)
	want := `
# HELP ktpipe_api_requests_total Keeptrusts API requests by operation and status class (2xx, 4xx, 5xx, error: no response).
# TYPE ktpipe_api_requests_total counter
ktpipe_api_requests_total{operation="count events",status_class="5xx"} 1
ktpipe_api_requests_total{operation="get export",status_class="4xx"} 1
ktpipe_api_requests_total{operation="list events",status_class="4xx"} 1
ktpipe_api_requests_total{operation="list events",status_class="5xx"} 1
ktpipe_api_requests_total{operation="list events",status_class="error"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "ktpipe_api_requests_total"); err != nil {
		t.Fatal(err)
	}
}

// The SDK's metrics (and workflow code's) reach the registry with
// Prometheus names: counters end in _total.
func TestSDKMetricsReachTheRegistry(t *testing.T) {
	m := metrics.New()
	defer m.Close()
	wfmetrics.CountExport(m.SDKHandler().WithTags(map[string]string{"workflow_type": "ExportLoad"}), "failed")
	m.SDKHandler().WithTags(map[string]string{"workflow_type": "Audit"}).Counter("temporal_workflow_failed").Inc(1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]float64{}
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, s := range mf.GetMetric() {
				got[mf.GetName()] += s.GetCounter().GetValue()
			}
		}
		if got["ktpipe_exports_total"] == 1 && got["temporal_workflow_failed_total"] == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: ktpipe_exports_total %v, temporal_workflow_failed_total %v, want 1 each",
				got["ktpipe_exports_total"], got["temporal_workflow_failed_total"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWebhookAnswersCounted(t *testing.T) {
	m := metrics.New()
	defer m.Close()
	h := m.InstrumentWebhook(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	for _, p := range []string{"/", "/", "/bad"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", p, nil))
	}
	want := `
# HELP ktpipe_webhook_deliveries_total Webhook deliveries by the receiver's answer (HTTP status code).
# TYPE ktpipe_webhook_deliveries_total counter
ktpipe_webhook_deliveries_total{answer="202"} 2
ktpipe_webhook_deliveries_total{answer="401"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "ktpipe_webhook_deliveries_total"); err != nil {
		t.Fatal(err)
	}
}

func TestLiveLandingsCounted(t *testing.T) {
	m := metrics.New()
	defer m.Close()
	m.LiveLanded(500, false)
	m.LiveLanded(20, true) // streamed part of its rows, then failed
	m.LiveLanded(0, true)
	want := `
# HELP ktpipe_live_landing_failures_total LandLive attempts that failed (a landing tries 3 times, then its deliveries show when their batch commits).
# TYPE ktpipe_live_landing_failures_total counter
ktpipe_live_landing_failures_total 2
# HELP ktpipe_live_rows_total Rows streamed into live_events for fact_ai_event_live (at least once: a retried landing streams its rows again).
# TYPE ktpipe_live_rows_total counter
ktpipe_live_rows_total 520
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "ktpipe_live_rows_total", "ktpipe_live_landing_failures_total"); err != nil {
		t.Fatal(err)
	}
}

// The compaction interval is served in seconds (0: off); the oldest
// pending mark's time in Unix seconds while a load waits, and no series
// once none does (min() over the workers must not see a 0, nor an old time).
func TestCompactionGauges(t *testing.T) {
	m := metrics.New()
	defer m.Close()
	m.SetCompactInterval(15 * time.Minute)
	m.SetPending(2, time.Unix(1_800_000_000, 500_000_000))
	const interval = `
# HELP ktpipe_compact_interval_seconds The compaction's interval this worker is configured with (KTPIPE_COMPACT_EVERY; 0: off, no load is deferred); the compaction-behind alert compares the oldest pending load's age with it.
# TYPE ktpipe_compact_interval_seconds gauge
ktpipe_compact_interval_seconds 900
`
	want := interval + `# HELP ktpipe_oldest_pending_load_timestamp_seconds Unix time the oldest pending load's mark was written to staging, at this worker's last successful look (every KTPIPE_METRICS_REFRESH); absent when none is pending. A failed look keeps it.
# TYPE ktpipe_oldest_pending_load_timestamp_seconds gauge
ktpipe_oldest_pending_load_timestamp_seconds 1.8000000005e+09
`
	names := []string{"ktpipe_compact_interval_seconds", "ktpipe_oldest_pending_load_timestamp_seconds"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	m.SetPending(0, time.Unix(1_800_000_000, 0)) // none waits, whatever time it is handed
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(interval), names...); err != nil {
		t.Fatal(err)
	}
	m.SetPending(3, time.Time{}) // no time known: none served rather than 1970
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(interval), names...); err != nil {
		t.Fatal(err)
	}
}

// The commit histogram's help names the batch bound the warehouse
// enforces; metrics does not import warehouse for one number, so this
// test holds the two together.
func TestCommitHelpNamesTheBatchBound(t *testing.T) {
	m := metrics.New()
	defer m.Close()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ktpipe_chunk_commit_seconds" {
			if want := fmt.Sprintf("(up to %d)", warehouse.MaxBatchChunks); !strings.Contains(mf.GetHelp(), want) {
				t.Errorf("help %q does not say %s", mf.GetHelp(), want)
			}
			return
		}
	}
	t.Fatal("ktpipe_chunk_commit_seconds not served")
}

// The audit interval is served in seconds, 0 until set (a receiver): the
// audit-stale rule waits max(15 min, 3 × it), and a 0 leaves it 15 min.
func TestAuditIntervalGauge(t *testing.T) {
	m := metrics.New()
	defer m.Close()
	const help = `# HELP ktpipe_audit_interval_seconds The audit schedule's interval this worker is configured with (KTPIPE_AUDIT_INTERVAL; 0: a process that reads no audit row); the audit-stale alert fires after three of them, 15 minutes at least, without an audit row.
# TYPE ktpipe_audit_interval_seconds gauge
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(help+"ktpipe_audit_interval_seconds 0\n"), "ktpipe_audit_interval_seconds"); err != nil {
		t.Fatal(err)
	}
	m.SetAuditInterval(time.Hour)
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(help+"ktpipe_audit_interval_seconds 3600\n"), "ktpipe_audit_interval_seconds"); err != nil {
		t.Fatal(err)
	}
}
