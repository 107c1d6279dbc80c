package integration

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/webhook"
	"github.com/ktpipe/ktpipe/workflows"
)

// TestWebhookDeliveriesLandOnce: the simulator posts signed deliveries
// of live events to the receiver, every one of them twice (the sender
// never saw the first 2xx), and batches load them: each valid event once
// in the fact table, each invalid one once in quarantine.
func TestWebhookDeliveriesLandOnce(t *testing.T) {
	const secret = "whsec-integration"
	var receiver atomic.Pointer[webhook.Receiver]
	var received atomic.Int64
	twice := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Cleanup(twice.Close)
	cfg := simConfig()
	cfg.HistoryEvents = 0 // only live events, which webhooks deliver
	cfg.Webhooks = []ktsim.Webhook{{URL: twice.URL, Secret: secret, Subscription: "all"}}
	s := newStack(t, cfg, true)
	receiver.Store(&webhook.Receiver{Secret: secret, Store: s.acts.Store, Temporal: temporalSrv.Client(), TaskQueue: s.tq,
		Batch: workflows.WebhookBatchInput{Window: 2 * time.Second, Tuning: s.tuning}})

	for range 3 {
		s.sim.Ingest(100, 0.2)
		time.Sleep(700 * time.Millisecond)
	}
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		running, err := s.ctl.ListWorkflows(ctx, "Running", 10)
		if err != nil {
			t.Fatal(err)
		}
		// Visibility may lag a batch's start: also wait for the rows.
		fact, err := s.wh.FactIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if received.Load() == 3 && len(running) == 0 && len(fact) >= len(s.sim.Truth(time.Time{}, time.Time{}).Valid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 deliveries taken, %d batches still running", received.Load(), len(running))
		}
		time.Sleep(300 * time.Millisecond)
	}
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
