package app

import (
	"fmt"
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
