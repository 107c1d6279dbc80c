package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/workflows"
)

// TestWebhookBatchesBoundTheirDeliveries: past MaxPerBatch deliveries of
// a window, this process opens the window's next batch, so no batch gets
// more signals than Temporal takes; a new window starts over, and a
// delivery of the previous window still goes to that window's batch.
func TestWebhookBatchesBoundTheirDeliveries(t *testing.T) {
	b := &WebhookBatches{TaskQueue: "tq", MaxPerBatch: 3, Process: "p"}
	t0 := time.Date(2026, 11, 30, 0, 0, 10, 0, time.UTC)
	w0 := workflows.WebhookBatchID("tq", t0, time.Minute)
	w1 := workflows.WebhookBatchID("tq", t0.Add(time.Minute), time.Minute)
	var got []string
	for range 7 {
		got = append(got, b.batchID(w0))
	}
	got = append(got, b.batchID(w1), b.batchID(w0), b.batchID(w1))
	want := []string{w0, w0, w0, w0 + "-p-1", w0 + "-p-1", w0 + "-p-1", w0 + "-p-2", w1, w0, w1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("batches\n%v\nwant\n%v", got, want)
	}
}

// TestWebhookBatchesShareSignals: deliveries that arrive while a signal
// to their batch is in flight go together in the next one, and each Add
// returns its own signal's answer.
func TestWebhookBatchesShareSignals(t *testing.T) {
	release := make(chan struct{})
	calls := make(chan []string, 10)
	b := &WebhookBatches{TaskQueue: "tq"}
	b.signal = func(_ context.Context, id string, keys []string) error {
		calls <- keys
		if len(calls) == 1 {
			<-release // the first signal is slow
		}
		if slices.Contains(keys, "bad") {
			return errors.New("refused")
		}
		return nil
	}
	now := time.Now()
	errs := make(chan error, 10)
	add := func(key string) { errs <- b.Add(context.Background(), key, now) }
	go add("k0")
	for len(calls) == 0 { // k0's signal is in flight
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 5; i++ {
		go add(fmt.Sprint("k", i))
	}
	for {
		b.mu.Lock()
		n := len(b.waiting[workflows.WebhookBatchID("tq", now, time.Minute)].keys)
		b.mu.Unlock()
		if n == 5 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	first, second := <-calls, <-calls
	slices.Sort(second)
	if fmt.Sprint(first) != "[k0]" || fmt.Sprint(second) != "[k1 k2 k3 k4 k5]" || len(calls) != 0 {
		t.Fatalf("signals %v then %v (and %d more), want k0 alone, then k1..k5 together", first, second, len(calls))
	}
	if err := b.Add(context.Background(), "bad", now); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a refused signal answered %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		left := len(b.waiting)
		b.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d batches still marked as signalling", left)
		}
	}
}
