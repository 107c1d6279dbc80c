package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/webhook"
	"github.com/ktpipe/ktpipe/workflows"
)

// DefaultMaxDeliveriesPerBatch bounds the deliveries one receiver
// process sends to one batch. The batch keeps their keys in its history
// and passes them to one split activity (2,000 keys are about 100 KB, of
// Temporal's 2 MB a payload). One-key signals (KTPIPE_WEBHOOK_SHARED_SIGNALS
// off, the default) count against Temporal's 10,000 a workflow
// (history.maximumSignalsPerExecution): 2,000 leaves room for four
// receiver processes sharing a window's batch, with a margin for a
// restarted one (it counts from 0 again) and for deliveries received as
// the window turned. At 200 deliveries a second a 1-minute window takes
// six batches.
const DefaultMaxDeliveriesPerBatch = 2000

// WebhookBatches hands staged deliveries to the WebhookBatch workflow of
// their window by signal-with-start: the webhook.Batcher of a worker or
// a receiver-only process. Past MaxPerBatch deliveries in a window, this
// process opens another batch of the window, named after it.
//
// Without Shared (the default), each delivery is its own one-key
// DeliverySignal, which every worker version reads. With it, deliveries
// share signals: while a signal to a batch is in flight, the keys of the
// deliveries that arrive wait and go together in the next
// (DeliveriesSignal), and each delivery is answered once its own signal
// is in. At a few deliveries a second that is one signal each; at
// hundreds, the signals a second stay at what one round trip to Temporal
// allows, and so do the batch's history events (see
// KTPIPE_WEBHOOK_SHARED_SIGNALS for when it is safe).
type WebhookBatches struct {
	Client    client.Client
	TaskQueue string
	Batch     workflows.WebhookBatchInput
	// MaxPerBatch bounds the deliveries this process signals to one batch
	// (zero: DefaultMaxDeliveriesPerBatch).
	MaxPerBatch int
	// Process names this process in the ids of the extra batches (empty:
	// host name and process id).
	Process string
	// Shared sends several deliveries a signal (DeliveriesSignal).
	Shared bool
	// signal sends keys to batch id (nil: signal-with-start through
	// Client); tests replace it.
	signal func(ctx context.Context, id string, keys []string) error

	mu      sync.Mutex
	window  string                 // the newest window's batch id
	count   int                    // deliveries this process signalled in that window
	waiting map[string]*signalKeys // per batch with a signal in flight: the keys for the next
}

// signalKeys are keys that go to a batch in one signal; done closes
// when it is answered, with err.
type signalKeys struct {
	keys []string
	done chan struct{}
	err  error
}

// maxKeysPerSignal bounds the keys waiting for one signal (about 200 KB).
// The receiver's in-flight bound (at most 1,024) keeps them fewer;
// deliveries that gave up waiting (their sender retries) still count
// until the signal goes.
const maxKeysPerSignal = 4096

// signalTimeout bounds one signal: the receiver answers 503 after 10 s
// anyway (its stage timeout), and the sender retries.
const signalTimeout = 10 * time.Second

// Add signals key to the batch of received's window, starting it if need
// be, and returns when that signal is answered.
func (b *WebhookBatches) Add(ctx context.Context, key string, received time.Time) error {
	id := b.batchID(workflows.WebhookBatchID(b.TaskQueue, received, b.windowLength()))
	if !b.Shared {
		return b.start(ctx, id, workflows.DeliverySignal, key)
	}
	b.mu.Lock()
	if b.waiting == nil {
		b.waiting = map[string]*signalKeys{}
	}
	next, sending := b.waiting[id]
	if next == nil {
		next = &signalKeys{done: make(chan struct{})}
	}
	if len(next.keys) == maxKeysPerSignal {
		b.mu.Unlock()
		return fmt.Errorf("signal %s: %d deliveries already wait for it", id, maxKeysPerSignal)
	}
	next.keys = append(next.keys, key)
	b.waiting[id] = next
	b.mu.Unlock()
	if !sending {
		go b.send(id)
	}
	select {
	case <-next.done:
		return next.err
	case <-ctx.Done():
		return fmt.Errorf("signal %s: %w", id, ctx.Err())
	}
}

// send signals batch id the keys waiting for it, and again while more
// arrived meanwhile; it is the only sender to id while it runs.
func (b *WebhookBatches) send(id string) {
	signal := b.signal
	if signal == nil {
		signal = b.signalWithStart
	}
	for {
		b.mu.Lock()
		next := b.waiting[id]
		if next != nil && len(next.keys) == 0 {
			delete(b.waiting, id) // nothing arrived during the last signal
			next = nil
		} else if next != nil {
			b.waiting[id] = &signalKeys{done: make(chan struct{})} // marks a signal in flight
		}
		b.mu.Unlock()
		if next == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
		next.err = signal(ctx, id, next.keys)
		cancel()
		close(next.done)
	}
}

func (b *WebhookBatches) signalWithStart(ctx context.Context, id string, keys []string) error {
	return b.start(ctx, id, workflows.DeliveriesSignal, keys)
}

// start signals batch id, starting it if need be.
func (b *WebhookBatches) start(ctx context.Context, id, signal string, arg any) error {
	_, err := b.Client.SignalWithStartWorkflow(ctx, id, signal, arg,
		client.StartWorkflowOptions{ID: id, TaskQueue: b.TaskQueue, StaticSummary: "webhook deliveries batched for " + b.windowLength().String()}, workflows.WebhookBatch, b.Batch)
	if err != nil {
		return fmt.Errorf("signal %s: %w", id, err)
	}
	return nil
}

func (b *WebhookBatches) windowLength() time.Duration {
	if b.Batch.Window <= 0 {
		return workflows.DefaultWebhookWindow
	}
	return b.Batch.Window
}

// batchID counts the deliveries of the newest window and names the batch
// this one goes to. A delivery of an older window (received as the
// window turned) goes to that window's first batch uncounted: a few at
// most.
func (b *WebhookBatches) batchID(windowID string) string {
	b.mu.Lock()
	if windowID > b.window { // the ids' time is sortable text
		b.window, b.count = windowID, 0
	}
	n := -1
	if windowID == b.window {
		n = b.count
		b.count++
	}
	b.mu.Unlock()
	limit := b.MaxPerBatch
	if limit <= 0 {
		limit = DefaultMaxDeliveriesPerBatch
	}
	if n < limit {
		return windowID
	}
	process := b.Process
	if process == "" {
		process = thisProcess()
	}
	return fmt.Sprintf("%s-%s-%d", windowID, process, n/limit)
}

// thisProcess names this process in the ids of extra batches.
var thisProcess = sync.OnceValue(func() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
})

// serveWebhooks starts the webhook receiver on KTPIPE_WEBHOOK_ADDR;
// tuning travels in each batch's input, as it does in every input a starter gives.
func serveWebhooks(cfg config.Webhook, taskQueue string, tuning workflows.Tuning, deferLoads bool, c client.Client, store staging.Store, m *metrics.Metrics, logger *slog.Logger) (*http.Server, net.Addr, error) {
	ln, err := webhook.Listen(cfg.Addr, webhook.DefaultMaxConns, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("KTPIPE_WEBHOOK_ADDR: %w", err)
	}
	live := min(cfg.Live, cfg.Batch) // past the window: once, alongside the commit
	if live == 0 {
		live = -1 // the batch input's "never"; its zero is the default
	}
	rc := &webhook.Receiver{Secret: cfg.Secret.Reveal(), Store: store, Logger: logger,
		Batches: &WebhookBatches{Client: c, TaskQueue: taskQueue, Shared: cfg.SharedSignals,
			Batch: workflows.WebhookBatchInput{Window: cfg.Batch, LiveEvery: live, Tuning: tuning, Defer: deferLoads, LiveOnly: cfg.LiveOnly}},
		MaxBody:          cfg.MaxBody,
		MaxInFlight:      cfg.MaxInFlight,
		MaxInFlightBytes: cfg.MaxInFlightBytes,
	}
	srv := webhook.NewServer(rc, webhook.ServerOptions{ReadTimeout: cfg.ReadTimeout})
	srv.Handler = m.InstrumentWebhook(srv.Handler)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("webhook receiver stopped", "error", err)
		}
	}()
	logger.Info("receiving webhooks", "addr", ln.Addr().String(), "batch", cfg.Batch, "live", max(live, 0),
		"max_body", rc.MaxBody, "max_in_flight", rc.MaxInFlight, "max_in_flight_bytes", rc.MaxInFlightBytes, "max_conns", webhook.DefaultMaxConns, "shared_signals", cfg.SharedSignals, "live_only", cfg.LiveOnly, "read_timeout", srv.ReadTimeout)
	return srv, ln.Addr(), nil
}

// shutdownWebhooks lets deliveries in flight finish, for as long as one
// can take: webhook.NewServer's WriteTimeout spans reading one
// (KTPIPE_WEBHOOK_READ_TIMEOUT), staging and signalling it (10 s) and
// answering, with a margin; one second more covers Shutdown's polling.
// Past that it says so and closes what is left; the sender retries those
// deliveries.
func shutdownWebhooks(srv *http.Server) {
	drain := srv.WriteTimeout + time.Second
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		// ErrorLog is the receiver's logger (webhook.NewServer); err is
		// the deadline's or the listener's, never a request's content.
		srv.ErrorLog.Printf("webhook receiver: deliveries still in flight after %s; closing their connections, the sender retries them: %v", drain, err)
		srv.Close()
	}
}

// Receiving is a running receiver-only process.
type Receiving struct {
	Client      client.Client
	Addr        net.Addr // where it listens
	MetricsAddr net.Addr // where /metrics is served (nil: KTPIPE_METRICS_ADDR empty)
	srv         *http.Server
	metrics     *metrics.Metrics
	metricsSrv  *metrics.Server
	closeStore  func() error
	// stopSweeping ends the scratch directory's sweeps.
	stopSweeping context.CancelFunc
}

// Stop stops the receiver and closes the clients.
func (r *Receiving) Stop() {
	r.stopSweeping()
	shutdownWebhooks(r.srv)
	r.metricsSrv.Shutdown()
	r.metrics.Close()
	r.closeStore()
	r.Client.Close()
}

// StartReceiver runs the webhook receiver alone, for operators who expose
// it to the internet apart from the worker: a Temporal client to signal
// batches and the staging store the workers read (the same directory or
// bucket), but no workers and no BigQuery. Workers elsewhere load the
// batches.
func StartReceiver(ctx context.Context, cfg config.Receiver, logger *slog.Logger) (*Receiving, error) {
	m := metrics.New()
	c, _, err := dialTemporal(cfg.Temporal, logger, m)
	if err != nil {
		return nil, err
	}
	store, closeStore, err := OpenStore(ctx, cfg.Pipeline)
	if err != nil {
		c.Close()
		return nil, err
	}
	r := &Receiving{Client: c, metrics: m, closeStore: closeStore}
	if cfg.Metrics.Addr != "" {
		if r.metricsSrv, err = m.Serve(cfg.Metrics.Addr, logger); err != nil {
			closeStore()
			c.Close()
			return nil, err
		}
		r.MetricsAddr = r.metricsSrv.Addr
	}
	r.srv, r.Addr, err = serveWebhooks(cfg.Webhook, cfg.Temporal.TaskQueue, workflows.Tuning{Concurrency: cfg.Pipeline.Concurrency}, cfg.Pipeline.CompactEvery > 0, c, store, m, logger)
	if err != nil {
		r.metricsSrv.Shutdown()
		closeStore()
		c.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	r.stopSweeping = cancel
	go sweepScratch(sctx, store, logger)
	return r, nil
}

// RunReceiver runs a receiver-only process until ctx ends.
func RunReceiver(ctx context.Context, cfg config.Receiver, logger *slog.Logger) error {
	r, err := StartReceiver(ctx, cfg, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	r.Stop()
	return nil
}
