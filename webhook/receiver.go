// Package webhook receives Keeptrusts webhook deliveries: it verifies
// each one, stages its events, and signals the WebhookBatch workflow that
// loads the deliveries of its time window. Only a staging key travels in
// the signal; the events stay in staging.
package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/workflows"
)

// MaxBody bounds one delivery's body.
const MaxBody = 32 << 20

// Receiver is the http.Handler a Keeptrusts webhook subscription posts to.
type Receiver struct {
	Secret    keeptrusts.Secret
	Store     staging.Store
	Temporal  client.Client
	TaskQueue string
	Batch     workflows.WebhookBatchInput
	Logger    *slog.Logger
	Now       func() time.Time // default time.Now
}

// DeliveryKey is where a delivery's events are staged: derived from the
// delivery id, which stays the same on every retry, so a retried delivery
// rewrites the same file.
func DeliveryKey(deliveryID string) string {
	sum := sha256.Sum256([]byte(deliveryID))
	return "webhooks/" + hex.EncodeToString(sum[:16]) + ".json"
}

// ServeHTTP answers 202 once the delivery is staged and signalled, 401 to
// a bad signature, 400 to a malformed delivery, and 503 when staging or
// Temporal fail, so that the sender retries.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a delivery", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("read body (at most %d bytes): %v", MaxBody, err), http.StatusRequestEntityTooLarge)
		return
	}
	now := time.Now
	if rc.Now != nil {
		now = rc.Now
	}
	if err := keeptrusts.VerifySignature(rc.Secret, r.Header.Get("Keeptrusts-Signature"), body, now()); err != nil {
		rc.log().Warn("webhook delivery refused", "delivery", r.Header.Get("Keeptrusts-Delivery"), "error", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	deliveryID := r.Header.Get("Keeptrusts-Delivery")
	if deliveryID == "" {
		http.Error(w, "missing Keeptrusts-Delivery header", http.StatusBadRequest)
		return
	}
	var d struct {
		Type   string          `json:"type"`
		Events json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		http.Error(w, "delivery is not a JSON object: "+err.Error(), http.StatusBadRequest)
		return
	}
	if d.Type != "events.batch" {
		http.Error(w, fmt.Sprintf("delivery type %q: want events.batch", d.Type), http.StatusBadRequest)
		return
	}
	if len(d.Events) == 0 || d.Events[0] != '[' {
		http.Error(w, "delivery events: want a JSON array", http.StatusBadRequest)
		return
	}
	key := DeliveryKey(deliveryID)
	if err := rc.stageAndSignal(r.Context(), key, d.Events, now()); err != nil {
		rc.log().Error("webhook delivery not taken; the sender will retry", "delivery", deliveryID, "error", err)
		http.Error(w, "delivery not taken, retry later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// stageAndSignal writes the events before signalling, so a batch never
// gets a key without its file.
func (rc *Receiver) stageAndSignal(ctx context.Context, key string, events []byte, now time.Time) error {
	f, err := rc.Store.Create(ctx, key)
	if err != nil {
		return err
	}
	if _, err := f.Write(events); err != nil {
		f.Close()
		return fmt.Errorf("stage %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("stage %s: %w", key, err)
	}
	window := rc.Batch.Window
	if window <= 0 {
		window = workflows.DefaultWebhookWindow
	}
	id := workflows.WebhookBatchID(rc.TaskQueue, now, window)
	_, err = rc.Temporal.SignalWithStartWorkflow(ctx, id, workflows.DeliverySignal, key,
		client.StartWorkflowOptions{ID: id, TaskQueue: rc.TaskQueue}, workflows.WebhookBatch, rc.Batch)
	if err != nil {
		return fmt.Errorf("signal %s: %w", id, err)
	}
	return nil
}

func (rc *Receiver) log() *slog.Logger {
	if rc.Logger != nil {
		return rc.Logger
	}
	return slog.Default()
}
