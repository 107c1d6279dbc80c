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
// to their batch is in flight go together in the next one, each Add
// answers with its own signal's result and not before, a delivery that
// gave up waiting is still signalled, and the keys waiting are bounded.
func TestWebhookBatchesShareSignals(t *testing.T) {
	errRefused := errors.New("refused")
	release := make(chan struct{})
	calls := make(chan []string, 10)
	b := &WebhookBatches{TaskQueue: "tq", Shared: true}
	b.signal = func(_ context.Context, id string, keys []string) error {
		calls <- keys
		if len(calls) == 1 {
			<-release // the first signal is slow
		}
		if slices.Contains(keys, "bad") {
			return errRefused
		}
		return nil
	}
	now := time.Now()
	id := workflows.WebhookBatchID("tq", now, time.Minute)
	waitFor := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !done(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("still waiting for %s", what)
			}
		}
	}
	queued := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		if w := b.waiting[id]; w != nil {
			return len(w.keys)
		}
		return -1
	}
	errs := make(chan error, 10)
	add := func(key string) { errs <- b.Add(context.Background(), key, now) }
	go add("k0")
	waitFor("k0's signal", func() bool { return len(calls) == 1 })
	for i := 1; i <= 4; i++ {
		go add(fmt.Sprint("k", i))
	}
	gaveUp, giveUp := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() { gone <- b.Add(gaveUp, "k5", now) }()
	waitFor("k1..k5 to queue", func() bool { return queued() == 5 })
	giveUp()
	if err := recvWithin(t, gone, "k5"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a delivery that gave up waiting answered %v", err)
	}
	if len(errs) != 0 {
		t.Fatal("a delivery was answered before its signal")
	}
	close(release)
	for range 5 {
		if err := recvWithin(t, errs, "k0..k4"); err != nil {
			t.Fatal(err)
		}
	}
	first, second := recvWithin(t, calls, "first signal"), recvWithin(t, calls, "second signal")
	slices.Sort(second)
	if fmt.Sprint(first) != "[k0]" || fmt.Sprint(second) != "[k1 k2 k3 k4 k5]" || len(calls) != 0 {
		t.Fatalf("signals %v then %v (and %d more), want k0 alone, then k1..k5 together", first, second, len(calls))
	}
	if err := b.Add(context.Background(), "bad", now); !errors.Is(err, errRefused) {
		t.Fatalf("a refused signal answered %v", err)
	}
	waitFor("the batch's signalling to end", func() bool { return queued() == -1 })

	// While a signal hangs, at most maxKeysPerSignal keys wait for the next.
	b.MaxPerBatch = 2 * maxKeysPerSignal // all to one batch
	hang, hanging := make(chan struct{}), make(chan struct{}, 1)
	defer close(hang)
	b.signal = func(ctx context.Context, _ string, _ []string) error {
		hanging <- struct{}{}
		<-hang
		return nil
	}
	short, cancel := context.WithCancel(context.Background())
	cancel() // these deliveries give up at once; their keys stay queued
	b.Add(short, "in-flight", now)
	recvWithin(t, hanging, "the hanging signal")
	for i := range maxKeysPerSignal {
		b.Add(short, fmt.Sprint("q", i), now)
	}
	last, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := b.Add(last, "one-too-many", now); err == nil || !strings.Contains(err.Error(), "4096 deliveries already wait") {
		t.Fatalf("past the bound: %v", err)
	}
}

// recvWithin receives from c, failing the test rather than hanging when
// nothing comes within 10 s.
func recvWithin[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing received for %s", what)
		var zero T
		return zero
	}
}
