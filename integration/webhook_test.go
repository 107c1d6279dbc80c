package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/webhook"
	"github.com/ktpipe/ktpipe/workflows"
)

// TestWebhookDeliveriesLandOnce: the simulator posts signed deliveries
// of live events to the receiver, every one of them twice (the sender
// never saw the first 2xx), and batches load them: each valid event once
// in the fact table, each invalid one once in quarantine.
// deliverTwice hands each delivery to the receiver twice (a sender
// retrying one that was taken) and counts those taken.
func deliverTwice(t *testing.T, receiver *atomic.Pointer[webhook.Receiver], received *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		status := 0
		for range 2 {
			req := r.Clone(r.Context())
			req.Body = io.NopCloser(bytes.NewReader(body))
			rec := httptest.NewRecorder()
			receiver.Load().ServeHTTP(rec, req)
			status = rec.Code
		}
		if status == http.StatusAccepted {
			received.Add(1)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// twiceDeliveredStack is a stack whose simulator sends only live events,
// by webhook, each delivery twice (deliverTwice) to a receiver of 2 s
// batches (batch, given its window and tuning); received counts the
// deliveries taken.
func twiceDeliveredStack(t *testing.T, batch workflows.WebhookBatchInput) (s *stack, received *atomic.Int64) {
	const secret = "whsec-integration"
	var receiver atomic.Pointer[webhook.Receiver]
	received = new(atomic.Int64)
	twice := deliverTwice(t, &receiver, received)
	cfg := simConfig()
	cfg.HistoryEvents = 0 // only live events, which webhooks deliver
	cfg.Webhooks = []ktsim.Webhook{{URL: twice.URL, Secret: secret, Subscription: "all"}}
	s = newStack(t, cfg, true)
	batch.Window, batch.Tuning = 2*time.Second, s.tuning
	receiver.Store(&webhook.Receiver{Secret: secret, Store: s.acts.Store, Logger: quietLogger(),
		Batches: &app.WebhookBatches{Client: temporalSrv.Client(), TaskQueue: s.tq,
			Batch: batch}})
	return s, received
}

func TestWebhookDeliveriesLandOnce(t *testing.T) {
	s, received := twiceDeliveredStack(t, workflows.WebhookBatchInput{})

	for range 3 {
		s.sim.Ingest(100, 0.2)
		time.Sleep(700 * time.Millisecond)
	}
	s.waitBatchesLoaded(t, func() (bool, string) {
		return received.Load() == 3, fmt.Sprintf("%d of 3 deliveries taken", received.Load())
	})
	ctx := context.Background()
	s.assertExactlyOnce(time.Time{}, time.Time{})
	done, err := s.ctl.ListWorkflows(ctx, "Completed", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range done {
		if w.Type == "WebhookBatch" {
			recordHistory(t, w.ID, w.RunID, "webhook_batch")
			break
		}
	}
}

// TestWebhookEventsShowLiveBeforeTheirBatchCommits: a batch streams its
// deliveries' valid events into the live view within seconds, long
// before its window closes and it commits them; once it has, the view
// holds each event once, from the fact table, and the fact table is
// exactly once.
func TestWebhookEventsShowLiveBeforeTheirBatchCommits(t *testing.T) {
	const secret = "whsec-live"
	var receiver atomic.Pointer[webhook.Receiver]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { receiver.Load().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	cfg := simConfig()
	cfg.HistoryEvents = 0
	cfg.Webhooks = []ktsim.Webhook{{URL: srv.URL, Secret: secret, Subscription: "all"}}
	s := newStack(t, cfg, true)
	const window = 40 * time.Second
	receiver.Store(&webhook.Receiver{Secret: secret, Store: s.acts.Store, Logger: quietLogger(),
		Batches: &app.WebhookBatches{Client: temporalSrv.Client(), TaskQueue: s.tq, Shared: true, // shared here; TestWebhookDeliveriesLandOnce covers one key a signal
			Batch: workflows.WebhookBatchInput{Window: window, LiveEvery: time.Second, Tuning: s.tuning}}})
	// Deliveries made just before their window closes could commit
	// before the view is read: start early in a window.
	if left := window - time.Since(time.Now().UTC().Truncate(window)); left < window/2 {
		time.Sleep(left + 100*time.Millisecond)
	}
	start := time.Now()
	s.sim.Ingest(100, 0.2)
	ctx := context.Background()
	valid := s.sim.Truth(time.Time{}, time.Time{}).Valid
	for {
		live, err := s.wh.LiveIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		shown := 0
		for _, id := range valid {
			if rows := live[id]; len(rows) == 1 && !rows[0] {
				shown++
			}
		}
		if shown == len(valid) && len(live) == len(valid) {
			break
		}
		if time.Since(start) > window/2 {
			t.Fatalf("after %s, %d of %d valid events live and uncommitted, %d ids in the view", time.Since(start), shown, len(valid), len(live))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d valid events live %s after they were ingested", len(valid), time.Since(start).Round(time.Millisecond))
	s.waitBatchesLoaded(t, nil)
	s.assertExactlyOnce(time.Time{}, time.Time{})
	live, err := s.wh.LiveIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range valid {
		if rows := live[id]; len(rows) != 1 || !rows[0] {
			t.Errorf("event %s in the view after the commit as %v, want once, committed", id, rows)
		}
	}
	done, err := s.ctl.ListWorkflows(ctx, "Completed", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range done {
		if w.Type == "WebhookBatch" {
			recordHistory(t, w.ID, w.RunID, "webhook_batch_live")
			break
		}
	}
}

// TestWebhookReceiverRunsAsItsOwnProcess: `worker webhook`, the real
// binary, configured with neither BigQuery nor the Keeptrusts API, takes
// the simulator's deliveries, stages them where the workers read and
// signals their batches; workers elsewhere (here: in the test) load them
// exactly once.
func TestWebhookReceiverRunsAsItsOwnProcess(t *testing.T) {
	const secret = "whsec-receiver-process"
	bin := buildWorker(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := simConfig()
	cfg.HistoryEvents = 0
	cfg.Webhooks = []ktsim.Webhook{{URL: "http://" + addr, Secret: secret, Subscription: "all"}}
	s := newStack(t, cfg, true)

	cmd := exec.Command(bin, "webhook")
	// Only what the receiver needs: no BIGQUERY_* and no KEEPTRUSTS_BASE_URL
	// or token, which the worker would require.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"TEMPORAL_ADDRESS=" + temporalSrv.FrontendHostPort(),
		"KTPIPE_TASK_QUEUE=" + s.tq,
		"KTPIPE_STAGING_DIR=" + s.staging,
		"KTPIPE_WEBHOOK_ADDR=" + addr,
		"KEEPTRUSTS_WEBHOOK_SECRET=" + secret,
		"KTPIPE_WEBHOOK_BATCH=2s",
		"KTPIPE_METRICS_ADDR=127.0.0.1:0",
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "receiver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("receiver log:\n%s", b[max(0, len(b)-4000):])
		}
		logf.Close()
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("GET: %d, want 405", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver process does not answer: %v", err)
		}
	}

	for range 3 {
		s.sim.Ingest(100, 0.2)
		time.Sleep(700 * time.Millisecond)
	}
	s.waitBatchesLoaded(t, nil)
	s.assertExactlyOnce(time.Time{}, time.Time{})
}

// waitBatchesLoaded waits, at most 2 minutes, until no workflow is running
// and the fact table holds as many rows as the simulator has valid events
// (visibility may lag a batch's start, so the rows are waited for too),
// and until more, when given, says its own condition holds.
func (s *stack) waitBatchesLoaded(t *testing.T, more func() (bool, string)) {
	t.Helper()
	ctx := context.Background()
	want := len(s.sim.Truth(time.Time{}, time.Time{}).Valid)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		running, err := s.ctl.ListWorkflows(ctx, "Running", 10)
		if err != nil {
			t.Fatal(err)
		}
		fact, err := s.wh.FactIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ok, what := true, ""
		if more != nil {
			ok, what = more()
		}
		if ok && len(running) == 0 && len(fact) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events loaded, %d batches still running %s", len(fact), want, len(running), what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
