// Package app builds ktpipe's dependencies from configuration and runs
// its workers; the worker command and the local stack both use it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/ktpipe/ktpipe/activities"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// DialBigQuery returns the configured BigQuery client (the emulator when
// BIGQUERY_ENDPOINT is set).
func DialBigQuery(ctx context.Context, cfg config.BigQuery) (*bigquery.Client, error) {
	return warehouse.Dial(ctx, cfg.Project, cfg.Endpoint)
}

// OpenStore returns the staging store: a Cloud Storage bucket when
// KTPIPE_STAGING_BUCKET is set (STORAGE_EMULATOR_HOST points the client at
// an emulator), else the directory. close releases the store's client.
func OpenStore(ctx context.Context, cfg config.Pipeline) (store staging.Store, close func() error, err error) {
	if err := os.MkdirAll(cfg.StagingDir, 0o700); err != nil { // staged events are private
		return nil, nil, fmt.Errorf("KTPIPE_STAGING_DIR: %w", err)
	}
	dir := staging.Dir{Root: cfg.StagingDir}
	if cfg.StagingBucket == "" {
		return dir, func() error { return nil }, nil
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("KTPIPE_STAGING_BUCKET: cloud storage client: %w", err)
	}
	return staging.Bucket{Client: gcs, Name: cfg.StagingBucket, Prefix: cfg.StagingPrefix, Scratch: dir}, gcs.Close, nil
}

// NewKeeptrusts returns the Keeptrusts API client of cfg: its token and
// bounds, and opts.
func NewKeeptrusts(cfg config.Keeptrusts, opts ...keeptrusts.Option) (*keeptrusts.Client, error) {
	bounds := []keeptrusts.Option{
		keeptrusts.WithTimeouts(keeptrusts.Timeouts{Connect: cfg.ConnectTimeout, Response: cfg.ResponseTimeout,
			IdleRead: cfg.IdleReadTimeout, Call: cfg.CallTimeout}),
		keeptrusts.WithMaxBodyBytes(cfg.MaxResponseBytes),
	}
	return keeptrusts.New(cfg.BaseURL, cfg.Token.Reveal(), append(bounds, opts...)...)
}

// LiveWindow is the live view's window the configuration asks for (0:
// the default). Live-only webhooks keep it at its longest: a delivery
// must show until the pull, up to an hour later, streams its event again
// and the compaction commits it, and the pull streaming it may fail.
func LiveWindow(cfg config.Worker) time.Duration {
	switch {
	case cfg.Webhook.LiveOnly:
		return warehouse.MaxLiveWindow
	case cfg.Pipeline.CompactEvery > 0:
		return warehouse.LiveWindowFor(cfg.Pipeline.CompactEvery)
	}
	return 0
}

// NewActivities builds the activities' dependencies from configuration;
// m (may be nil) counts API requests and times chunk stages and commits.
func NewActivities(cfg config.Worker, bq *bigquery.Client, store staging.Store, m *metrics.Metrics) (*activities.Activities, error) {
	var opts []keeptrusts.Option
	if m != nil {
		opts = append(opts, keeptrusts.WithObserver(apiObserver{m}))
	}
	api, err := NewKeeptrusts(cfg.Keeptrusts, opts...)
	if err != nil {
		return nil, err
	}
	wh, err := warehouse.New(bq, cfg.BigQuery.Project, cfg.BigQuery.Dataset, cfg.BigQuery.Location)
	if err != nil {
		return nil, err
	}
	if d := LiveWindow(cfg); d > 0 {
		wh.SetLiveWindow(d)
	}
	wh.SetMaxDimUsers(cfg.Pipeline.MaxDimUsers)
	prices, err := warehouse.LoadPrices(cfg.Pipeline.PriceFile)
	if err != nil {
		return nil, fmt.Errorf("KTPIPE_PRICE_TABLE: %w", err)
	}
	users, err := warehouse.LoadUserMap(cfg.Pipeline.UserMapFile)
	if err != nil {
		return nil, fmt.Errorf("KTPIPE_USER_MAP: %w", err)
	}
	return &activities.Activities{API: api, Warehouse: wh, Store: store, Metrics: m,
		Prices: prices, Users: users, ChunkRows: cfg.Pipeline.ChunkRows,
		Limits: schemas.Limits{MaxRecordBytes: cfg.Pipeline.MaxRecordBytes, MaxInflateRatio: cfg.Pipeline.MaxInflateRatio}}, nil
}

// RegisterSearchAttributes adds ktpipe's search attributes to the
// namespace when they are missing. It needs namespace admin rights; where
// the worker lacks them, an operator registers them once.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	want := map[string]enumspb.IndexedValueType{}
	for _, k := range workflows.SearchAttributeKeys {
		want[k.GetName()] = k.GetValueType()
	}
	_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: want,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register search attributes: %w", err)
	}
	return nil
}

// Workers are the three workers of one process: workflows and warehouse
// activities on the main queue, Keeptrusts API activities on a
// rate-limited queue, and merges on a queue served one at a time.
type Workers []worker.Worker

// NewWorkers creates (but does not start) the workers.
func NewWorkers(c client.Client, taskQueue string, acts *activities.Activities, concurrency int, apiRate float64) Workers {
	main := worker.New(c, taskQueue, withRecovery(worker.Options{MaxConcurrentActivityExecutionSize: concurrency}))
	for _, wf := range workflows.All() {
		main.RegisterWorkflow(wf)
	}
	main.RegisterActivity(acts)
	main.RegisterActivity(&activities.Cleaner{Store: acts.Store, Temporal: c, TaskQueue: taskQueue, Metrics: acts.Metrics})
	api := worker.New(c, taskQueue+workflows.APIQueueSuffix, withRecovery(worker.Options{
		MaxConcurrentActivityExecutionSize: concurrency,
		// Across every worker of the cluster: the API's rate limit is the
		// organisation's, not the process's.
		TaskQueueActivitiesPerSecond: apiRate,
	}))
	api.RegisterActivity(acts)
	// Merges of different loads run one at a time per worker: their
	// anti-join inserts must not race on the same event ids.
	merge := worker.New(c, taskQueue+workflows.MergeQueueSuffix, withRecovery(worker.Options{MaxConcurrentActivityExecutionSize: 1}))
	merge.RegisterActivity(acts)
	return Workers{main, api, merge}
}

// withRecovery sizes o for a fast recovery when a worker dies.
//   - Heartbeats are sent at most every 2s (the SDK's default is 80% of
//     the heartbeat timeout, 8s of 10s: one slow heartbeat RPC would then
//     look like a dead worker). Activities heartbeat every third of the
//     timeout, so each of those beats is sent.
//   - A workflow task queued for a worker that died moves to the shared
//     queue after 2s instead of 5s; a live worker picks its sticky tasks
//     up in milliseconds, and missing it costs only a history replay.
func withRecovery(o worker.Options) worker.Options {
	o.MaxHeartbeatThrottleInterval = 2 * time.Second
	o.StickyScheduleToStartTimeout = 2 * time.Second
	return o
}

// Start starts every worker.
func (ws Workers) Start() error {
	for i, w := range ws {
		if err := w.Start(); err != nil {
			for _, started := range ws[:i] {
				started.Stop()
			}
			return fmt.Errorf("start worker: %w", err)
		}
	}
	return nil
}

// Stop stops every worker, letting running activities finish up to the
// worker's stop timeout.
func (ws Workers) Stop() {
	for _, w := range ws {
		w.Stop()
	}
}

// Running is a started worker process's parts.
type Running struct {
	Client     client.Client
	Activities *activities.Activities
	Workers    Workers
	bq         *bigquery.Client
	closeStore func() error
	webhooks   *http.Server // nil unless KTPIPE_WEBHOOK_ADDR is set
	Metrics    *metrics.Metrics
	// MetricsAddr is where /metrics is served (nil: KTPIPE_METRICS_ADDR empty).
	MetricsAddr    net.Addr
	metricsSrv     *metrics.Server
	stopRefreshing context.CancelFunc
}

// Stop stops the receiver and the workers and closes the clients.
func (r *Running) Stop() {
	if r.webhooks != nil {
		shutdownWebhooks(r.webhooks)
	}
	r.stopRefreshing()
	r.metricsSrv.Shutdown()
	r.Workers.Stop()
	r.Metrics.Close()
	r.closeStore()
	r.bq.Close()
	r.Client.Close()
}

// StartWorker connects everything, prepares the warehouse schema and
// starts the workers; it returns once they poll.
func StartWorker(ctx context.Context, cfg config.Worker, logger *slog.Logger) (*Running, error) {
	m := workerMetrics(cfg.Pipeline)
	c, topts, err := dialTemporal(cfg.Temporal, logger, m)
	if err != nil {
		return nil, err
	}
	bq, err := DialBigQuery(ctx, cfg.BigQuery)
	if err != nil {
		c.Close()
		return nil, err
	}
	store, closeStore, err := OpenStore(ctx, cfg.Pipeline)
	if err != nil {
		bq.Close()
		c.Close()
		return nil, err
	}
	fail := func(err error) (*Running, error) {
		m.Close()
		closeStore()
		bq.Close()
		c.Close()
		return nil, err
	}
	acts, err := NewActivities(cfg, bq, store, m)
	if err != nil {
		return fail(err)
	}
	if err := RegisterSearchAttributes(ctx, c, topts.Namespace); err != nil {
		logger.Warn("search attributes not registered; workflows that set them will fail until an operator adds them", "error", err)
	}
	// A migration may fill an added column in every existing row: said
	// before it starts, and bounded, since nothing is served until then.
	logger.Info("checking the warehouse schema", "dataset", cfg.BigQuery.Dataset, "bound", SchemaTimeout)
	sctx, cancel := context.WithTimeout(ctx, SchemaTimeout)
	rep, err := acts.Warehouse.EnsureSchema(sctx)
	cancel()
	if err != nil {
		if errors.Is(sctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("not ready within %s (a migration filling added columns of large tables?): %w", SchemaTimeout, err)
		}
		return fail(fmt.Errorf("warehouse schema: %w", err))
	}
	for _, b := range rep.Backfills {
		logger.Info("filled added columns in existing rows (once)", "table", b.Table, "how", b.How, "statement", b.SQL)
	}
	logger.Info("warehouse ready", "dataset", cfg.BigQuery.Dataset, "schema", rep.String())
	if len(rep.ForeignColumns) > 0 {
		logger.Info("columns ktpipe does not define were left alone", "columns", rep.ForeignColumns)
	}
	ws := NewWorkers(c, cfg.Temporal.TaskQueue, acts, cfg.Pipeline.Concurrency, cfg.Keeptrusts.RateLimit)
	if err := ws.Start(); err != nil {
		return fail(err)
	}
	logger.Info("worker running", "task_queue", cfg.Temporal.TaskQueue, "namespace", topts.Namespace, "address", topts.HostPort)
	r := &Running{Client: c, Activities: acts, Workers: ws, bq: bq, closeStore: closeStore, Metrics: m}
	if cfg.Metrics.Addr != "" {
		if r.metricsSrv, err = m.Serve(cfg.Metrics.Addr, logger); err != nil {
			ws.Stop()
			return fail(err)
		}
		r.MetricsAddr = r.metricsSrv.Addr
	}
	if cfg.Webhook.Addr != "" {
		if r.webhooks, _, err = serveWebhooks(cfg.Webhook, cfg.Temporal.TaskQueue, workflows.Tuning{Concurrency: cfg.Pipeline.Concurrency}, cfg.Pipeline.CompactEvery > 0, c, store, m, logger); err != nil {
			r.metricsSrv.Shutdown()
			ws.Stop()
			return fail(err)
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.stopRefreshing = cancel
	go refreshGauges(rctx, acts.Warehouse, store, m, cfg.Metrics.Refresh, cfg.Metrics.AuditInterval, logger)
	go sweepScratch(rctx, store, logger)
	return r, nil
}

// scratchSweepEvery is how often a process sweeps its bucket store's
// local scratch directory (staging.Bucket.SweepScratch).
const scratchSweepEvery = 6 * time.Hour

// sweepScratch removes, at start and every scratchSweepEvery until ctx
// ends, what writes and downloads that died left in this host's scratch
// directory, once a day old (activities.MinStagingRetention: no live
// attempt writes a file that long). A directory store has no scratch:
// the clean-up workflow sweeps it whole.
func sweepScratch(ctx context.Context, store staging.Store, logger *slog.Logger) {
	b, ok := store.(staging.Bucket)
	if !ok {
		return
	}
	t := time.NewTicker(scratchSweepEvery)
	defer t.Stop()
	for {
		files, bytes, err := b.SweepScratch(ctx, activities.MinStagingRetention, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("sweeping the staging scratch directory failed; the next sweep tries again", "dir", b.Scratch.Root, "error", err)
		case files > 0:
			logger.Info("removed files that dead writes left in the staging scratch directory", "dir", b.Scratch.Root, "files", files, "bytes", bytes)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SchemaTimeout bounds the schema check and its migrations at a worker's
// start, all together: BigQuery ends a statement at 6 hours, and a
// migration fills a few tables (fact, raw, quarantine) one after
// another, so a migration is not cut off (it would start again, and bill
// again, at the next start); what outlasts it is stuck elsewhere (an
// endpoint that never answers).
const SchemaTimeout = 24 * time.Hour

// RunWorker runs a worker process until ctx ends.
func RunWorker(ctx context.Context, cfg config.Worker, logger *slog.Logger) error {
	r, err := StartWorker(ctx, cfg, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	r.Stop()
	return nil
}

// SearchAttributeTypes returns ktpipe's search attributes typed for a dev
// server's registration.
func SearchAttributeTypes() temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		workflows.KindKey.ValueSet(""),
		workflows.WindowStartKey.ValueSet(time.Unix(0, 0)),
		workflows.WindowEndKey.ValueSet(time.Unix(0, 0)),
		workflows.ExportIDKey.ValueSet(""),
		workflows.LoadIDKey.ValueSet(""),
	)
}
