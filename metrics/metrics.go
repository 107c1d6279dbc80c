// Package metrics is the one home of ktpipe's Prometheus metrics: the
// registry a worker or receiver serves on KTPIPE_METRICS_ADDR, the
// Temporal SDK's metrics handler feeding it (worker, client and
// workflow-code metrics, through tally as the Temporal reference
// application does), and ktpipe's own metrics with their names.
//
// Metrics counted in workflow code (ktpipe_records_total,
// ktpipe_exports_total) are declared in metrics/wfmetrics, which links no
// Prometheus: they go through workflow.GetMetricsHandler, which drops
// what a replay emits, so a replayed history never counts twice, and
// reach this registry through SDKHandler. Everything else is counted
// where it happens (the API client, activities, the receiver) or read
// from the warehouse (the audit gauges) by the process that serves it.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// sdkReportEvery is how often tally hands the SDK's (and workflow code's)
// metrics to the Prometheus registry: a scrape sees them at most this late.
const sdkReportEvery = time.Second

// Metrics is one process's registry and ktpipe's metrics in it. A nil
// *Metrics records nothing, so code that may run without a registry
// (tests, tools) calls its methods unconditionally.
type Metrics struct {
	reg      *prometheus.Registry
	sdk      client.MetricsHandler
	sdkClose io.Closer

	apiRequests    *prometheus.CounterVec
	apiFailures    prometheus.Gauge
	retryAfterWait prometheus.Counter
	chunkStage     prometheus.Histogram
	chunkCommit    prometheus.Histogram
	webhook        *prometheus.CounterVec
	stagedBytes    prometheus.Gauge
	liveRows       prometheus.Counter
	liveFailures   prometheus.Counter

	// Read from the warehouse by the worker (app.gaugeReads). Served
	// only once known (lazy): a 0 before the first audit would be a
	// completeness of 0 % to an alert.
	checkpointAge  *prometheus.GaugeVec
	lag            *prometheus.GaugeVec
	factDupRatio   *prometheus.GaugeVec
	resendRatio    *prometheus.GaugeVec
	violations     *prometheus.GaugeVec
	completeness   *prometheus.GaugeVec
	reconcileRatio *prometheus.GaugeVec
	// 0 until an audit row is read: the audit-stale alert fires on a
	// worker that never saw one.
	auditLast    prometheus.Gauge
	pullInterval prometheus.Gauge
	// The interval the worker reads audit rows at: the audit-stale alert
	// waits three of them, so a long interval does not fire every cycle.
	auditInterval prometheus.Gauge

	// Read from the staging store's compaction marks by the worker
	// (activities.RefreshPendingGauges), and its configured interval. The
	// oldest mark's time is served only while a load is pending (lazy), so
	// min() over the workers never picks a worker that sees none, and it
	// is a time, not an age: a look that fails keeps it, and the alert's
	// time() - it still grows.
	pendingLoads    prometheus.Gauge
	oldestPending   *prometheus.GaugeVec
	compactInterval prometheus.Gauge
	// Whether the last look at the marks succeeded, served from the first
	// look on: a worker that restarted while its looks fail serves no
	// oldest time, and this is what still shows it.
	pendingLook *prometheus.GaugeVec

	mu          sync.Mutex
	consecutive int // current run of failed API calls in this process
}

// New makes a registry with the Go runtime and process collectors, the
// SDK's metrics and ktpipe's.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{reg: reg}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		f(g)
		return g
	}
	lazy := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, nil)
		f(g)
		return g
	}
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktpipe_api_requests_total",
		Help: "Keeptrusts API requests by operation and status class (2xx, 4xx, 5xx, error: no response)."}, []string{"operation", "status_class"})
	f(m.apiRequests)
	m.apiFailures = gauge("ktpipe_api_consecutive_failures",
		"Current run of failed Keeptrusts API calls in this process (5xx, 429, 401, 403 or no response); a success resets it.")
	m.retryAfterWait = prometheus.NewCounter(prometheus.CounterOpts{Name: "ktpipe_retry_after_wait_seconds_total",
		Help: "Seconds the Keeptrusts API asked ktpipe to wait (Retry-After, clamped to 5 min), each honoured before the next attempt."})
	f(m.retryAfterWait)
	// Buckets from a fraction of a second (a small chunk on BigQuery) to
	// many minutes (a large chunk on the emulator, see README Performance).
	buckets := prometheus.ExponentialBuckets(0.1, 2, 14) // 0.1 s … ~820 s
	m.chunkStage = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ktpipe_chunk_stage_seconds",
		Help: "Time to stage one chunk into its staging tables (load jobs and row-count check), per attempt.", Buckets: buckets})
	f(m.chunkStage)
	m.chunkCommit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ktpipe_chunk_commit_seconds",
		Help: "Time to commit one batch of staged chunks (up to 480) into raw, fact and quarantine (one transaction of guarded inserts, then the look for doubled rows when a commit landed beside it), per attempt.", Buckets: buckets})
	f(m.chunkCommit)
	m.webhook = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktpipe_webhook_deliveries_total",
		Help: "Webhook deliveries by the receiver's answer (HTTP status code)."}, []string{"answer"})
	f(m.webhook)
	m.liveRows = prometheus.NewCounter(prometheus.CounterOpts{Name: "ktpipe_live_rows_total",
		Help: "Rows streamed into live_events for fact_ai_event_live (at least once: a retried landing streams its rows again)."})
	f(m.liveRows)
	m.liveFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "ktpipe_live_landing_failures_total",
		Help: "LandLive attempts that failed (a landing tries 3 times, then its deliveries show when their batch commits)."})
	f(m.liveFailures)
	m.stagedBytes = gauge("ktpipe_staged_bytes",
		"Bytes the last staging clean-up on this worker left in staging (files of running, recent or unknown loads).")
	m.checkpointAge = lazy("ktpipe_checkpoint_age_seconds",
		"Seconds since the incremental pull last wrote its checkpoint (after every batch, even an empty one), from the checkpoint as of this worker's last read (read at most 5 minutes and a refresh tick apart).")
	m.pullInterval = gauge("ktpipe_pull_interval_seconds",
		"The incremental pull's schedule interval this worker is configured with (KTPIPE_SCHEDULE_INTERVAL); the stall alert compares the checkpoint age with it.")
	m.pendingLoads = gauge("ktpipe_pending_loads",
		"Loads marked pending in staging (staged, waiting for the compaction to commit them) at this worker's last look, every KTPIPE_METRICS_REFRESH.")
	m.oldestPending = lazy("ktpipe_oldest_pending_load_timestamp_seconds",
		"Unix time the oldest pending load's mark was written to staging, at this worker's last successful look (every KTPIPE_METRICS_REFRESH); absent when none is pending. A failed look keeps it.")
	m.pendingLook = lazy("ktpipe_pending_look_success",
		"1 when this worker's last look at the compaction's pending marks in staging (every KTPIPE_METRICS_REFRESH) succeeded, 0 when it failed; absent before the first look.")
	m.compactInterval = gauge("ktpipe_compact_interval_seconds",
		"The compaction's interval this worker is configured with (KTPIPE_COMPACT_EVERY; 0: off, no load is deferred); the compaction-behind alert compares the oldest pending load's age with it.")
	m.lag = lazy("ktpipe_ingestion_lag_seconds",
		"Last audit: the API's newest event timestamp minus the warehouse's newest, floored at 0 (the guide's ingestion lag).")
	m.factDupRatio = lazy("ktpipe_fact_duplicate_ratio",
		"Last audit: rows of fact_ai_event beyond the first per event id, over its rows, in the partitions audited. Must be 0.")
	m.resendRatio = lazy("ktpipe_source_resend_ratio",
		"Last audit: records the source sent again (already loaded ids) over records it sent, in the audit interval. Information only.")
	m.violations = lazy("ktpipe_schema_violations",
		"Last audit: quarantine rows written in its interval (records that broke a field rule).")
	m.completeness = lazy("ktpipe_completeness_ratio",
		"Last audit: (fact + quarantine) over the API's count for the last closed hours it checked.")
	m.reconcileRatio = lazy("ktpipe_reconcile_completeness_ratio",
		"Last scheduled reconcile: (fact + quarantine) over the API's count for the previous UTC day.")
	m.auditInterval = gauge("ktpipe_audit_interval_seconds",
		"The audit schedule's interval this worker is configured with (KTPIPE_AUDIT_INTERVAL; 0: a process that reads no audit row); the audit-stale alert fires after three of them, 15 minutes at least, without an audit row.")
	m.auditLast = gauge("ktpipe_audit_last_success_timestamp_seconds",
		"Unix time of the newest row in the audit table (when its audit started), as of this worker's last read (read at each audit's slot until its row shows, for up to 15 minutes or 3 intervals past the newest, and at most 5 minutes and a refresh tick apart).")

	reporter := tallyprom.NewReporter(tallyprom.Options{Registerer: reg, DefaultTimerType: tallyprom.HistogramTimerType,
		// A metric emitted twice with different label sets is dropped,
		// not a crash of the worker.
		OnRegisterError: func(err error) { slog.Default().Warn("metric not registered", "error", err) }})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{CachedReporter: reporter,
		Separator: tallyprom.DefaultSeparator, SanitizeOptions: &sdktally.PrometheusSanitizeOptions}, sdkReportEvery)
	m.sdk = sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
	m.sdkClose = closer
	return m
}

// SDKHandler is the metrics handler for the Temporal client
// (client.Options.MetricsHandler): the SDK's worker and client metrics,
// prefixed temporal_, and what workflow code counts.
func (m *Metrics) SDKHandler() client.MetricsHandler {
	if m == nil {
		return nil
	}
	return m.sdk
}

// Registry is the Prometheus registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Close flushes and stops the SDK metrics reporter.
func (m *Metrics) Close() error {
	if m == nil {
		return nil
	}
	return m.sdkClose.Close()
}

// Server serves /metrics.
type Server struct {
	Addr net.Addr
	srv  *http.Server
}

// Serve serves the registry at /metrics on addr (e.g. ":9464") until
// Shutdown. Reading a request is bounded (10 s), so a stalled scraper
// holds nothing.
func (m *Metrics) Serve(addr string, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("KTPIPE_METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "error", err)
		}
	}()
	logger.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return &Server{Addr: ln.Addr(), srv: srv}, nil
}

// Shutdown stops the server (nil: nothing to stop).
func (s *Server) Shutdown() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// APIRequest counts one Keeptrusts API request: status is the HTTP
// status (0 when no response came, err then says why). A failure (5xx,
// 429, 401, 403, no response) extends the run of consecutive failures; any
// other answer ends it, since the API answered as the contract says.
func (m *Metrics) APIRequest(operation string, status int, err error) {
	if m == nil {
		return
	}
	class := "error"
	if status > 0 {
		class = fmt.Sprintf("%dxx", status/100)
	}
	m.apiRequests.WithLabelValues(operation, class).Inc()
	failed := status == 0 || status >= 500 || status == http.StatusTooManyRequests ||
		status == http.StatusUnauthorized || status == http.StatusForbidden
	if err != nil && status == 0 && errors.Is(err, context.Canceled) {
		return // the caller gave up (a cancelled activity): says nothing about the API
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if failed {
		m.consecutive++
	} else {
		m.consecutive = 0
	}
	m.apiFailures.Set(float64(m.consecutive))
}

// RetryAfter adds a wait the API asked for.
func (m *Metrics) RetryAfter(d time.Duration) {
	if m == nil || d <= 0 {
		return
	}
	m.retryAfterWait.Add(d.Seconds())
}

// ObserveStage records one chunk stage's duration.
func (m *Metrics) ObserveStage(d time.Duration) {
	if m != nil {
		m.chunkStage.Observe(d.Seconds())
	}
}

// ObserveCommit records one batch commit's duration.
func (m *Metrics) ObserveCommit(d time.Duration) {
	if m != nil {
		m.chunkCommit.Observe(d.Seconds())
	}
}

// LiveLanded counts one LandLive attempt: the rows it streamed, and
// whether it failed.
func (m *Metrics) LiveLanded(rows int64, failed bool) {
	if m == nil {
		return
	}
	m.liveRows.Add(float64(rows))
	if failed {
		m.liveFailures.Inc()
	}
}

// WebhookAnswer counts one delivery by the status the receiver answered.
func (m *Metrics) WebhookAnswer(status int) {
	if m != nil {
		m.webhook.WithLabelValues(fmt.Sprint(status)).Inc()
	}
}

// SetStagedBytes records what a staging clean-up left behind.
func (m *Metrics) SetStagedBytes(n int64) {
	if m != nil {
		m.stagedBytes.Set(float64(n))
	}
}

// SetPullInterval publishes the configured pull interval.
func (m *Metrics) SetPullInterval(d time.Duration) {
	if m != nil {
		m.pullInterval.Set(d.Seconds())
	}
}

// SetAuditInterval publishes the configured audit interval.
func (m *Metrics) SetAuditInterval(d time.Duration) {
	if m != nil {
		m.auditInterval.Set(d.Seconds())
	}
}

// SetCompactInterval publishes the configured compaction interval (0: off).
func (m *Metrics) SetCompactInterval(d time.Duration) {
	if m != nil {
		m.compactInterval.Set(d.Seconds())
	}
}

// SetPending publishes a look at the compaction's marks: how many loads
// wait, and when the oldest mark was written (the series goes when none
// waits, or oldest is zero). A scrape between the two sets sees at worst a
// count without a time, which fires nothing.
func (m *Metrics) SetPending(loads int, oldest time.Time) {
	if m == nil {
		return
	}
	if loads <= 0 || oldest.IsZero() {
		m.oldestPending.Reset()
		m.pendingLoads.Set(float64(max(loads, 0)))
		return
	}
	m.pendingLoads.Set(float64(loads))
	m.oldestPending.WithLabelValues().Set(float64(oldest.UnixNano()) / 1e9)
}

// SetPendingLook publishes whether a look at the compaction's marks
// succeeded.
func (m *Metrics) SetPendingLook(ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.pendingLook.WithLabelValues().Set(v)
}

// SetCheckpointAge publishes the pull checkpoint's age.
func (m *Metrics) SetCheckpointAge(d time.Duration) {
	if m != nil {
		m.checkpointAge.WithLabelValues().Set(max(d, 0).Seconds())
	}
}

// Audit is the latest audit row's figures the gauges publish.
type Audit struct {
	At                 time.Time
	LagSeconds         float64
	FactDuplicateRatio float64
	SourceResendRatio  float64
	SchemaViolations   int64
	CompletenessRatio  float64
}

// SetAudit publishes the latest audit.
func (m *Metrics) SetAudit(a Audit) {
	if m == nil {
		return
	}
	m.lag.WithLabelValues().Set(a.LagSeconds)
	m.factDupRatio.WithLabelValues().Set(a.FactDuplicateRatio)
	m.resendRatio.WithLabelValues().Set(a.SourceResendRatio)
	m.violations.WithLabelValues().Set(float64(a.SchemaViolations))
	m.completeness.WithLabelValues().Set(a.CompletenessRatio)
	m.auditLast.Set(float64(a.At.UnixNano()) / 1e9)
}

// SetReconcileCompleteness publishes the last scheduled reconcile's ratio.
func (m *Metrics) SetReconcileCompleteness(r float64) {
	if m != nil {
		m.reconcileRatio.WithLabelValues().Set(r)
	}
}

// InstrumentWebhook counts every answer h gives (ktpipe_webhook_deliveries_total).
func (m *Metrics) InstrumentWebhook(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		m.WebhookAnswer(sw.status)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
