package ktsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Webhook is a receiver configured in Console Settings > Webhooks.
type Webhook struct {
	URL          string
	Secret       string
	Subscription string // all, blocks or escalations
	// MaxAttempts bounds the simulator's retries (the contract retries for
	// 24 h); default 8, with backoff from 100 ms.
	MaxAttempts int
	// MaxBackoff caps the doubling backoff between attempts (0: no cap).
	MaxBackoff time.Duration
}

// WebhookStats count the simulator's webhook deliveries.
type WebhookStats struct {
	Deliveries int64 // deliveries made (one per webhook and batch of events)
	Delivered  int64 // answered 2xx at some attempt
	Retries    int64 // attempts after a failed one (no answer or non-2xx)
	GaveUp     int64 // failed MaxAttempts times, or the server closed first
	InFlight   int64 // neither delivered nor given up yet
}

type webhookSender struct {
	hooks  []Webhook
	stop   chan struct{}
	client *http.Client
	seq    atomic.Int64
	stats  struct{ delivered, retries, gaveUp atomic.Int64 }
}

// WebhookStats returns the delivery counts so far.
func (s *Server) WebhookStats() WebhookStats {
	ws := s.hooks
	st := WebhookStats{Deliveries: ws.seq.Load(), Delivered: ws.stats.delivered.Load(),
		Retries: ws.stats.retries.Load(), GaveUp: ws.stats.gaveUp.Load()}
	st.InFlight = st.Deliveries - st.Delivered - st.GaveUp
	return st
}

func newWebhookSender(hooks []Webhook, stop chan struct{}) *webhookSender {
	return &webhookSender{hooks: hooks, stop: stop, client: &http.Client{Timeout: 10 * time.Second}}
}

// Sign returns the contract's Keeptrusts-Signature header value for body.
func Sign(secret string, t time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", t.Unix())
	mac.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(mac.Sum(nil)))
}

func (ws *webhookSender) deliver(recs []*record) {
	for _, h := range ws.hooks {
		var events []json.RawMessage
		for _, r := range recs {
			switch {
			case h.Subscription == "blocks" && r.decision != "block":
			case h.Subscription == "escalations" && r.decision != "escalate":
			default:
				events = append(events, r.json)
			}
		}
		if len(events) == 0 {
			continue
		}
		id := "dlv_" + strconv.FormatInt(ws.seq.Add(1), 10)
		body, _ := json.Marshal(map[string]any{"id": id, "type": "events.batch", "created_at": time.Now().UTC(), "events": events})
		go ws.send(h, id, body)
	}
}

// send posts one delivery, retrying any non-2xx with backoff; the
// delivery id stays the same on every retry.
func (ws *webhookSender) send(h Webhook, id string, body []byte) {
	attempts := h.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	backoff := 100 * time.Millisecond
	for i := 0; i < attempts; i++ {
		if i > 0 {
			ws.stats.retries.Add(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Keeptrusts-Delivery", id)
		req.Header.Set("Keeptrusts-Signature", Sign(h.Secret, time.Now(), body))
		resp, err := ws.client.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				ws.stats.delivered.Add(1)
				return
			}
		}
		if i == attempts-1 {
			break // no wait after the last attempt
		}
		select {
		case <-ws.stop:
			ws.stats.gaveUp.Add(1)
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; h.MaxBackoff > 0 && backoff > h.MaxBackoff {
			backoff = h.MaxBackoff
		}
	}
	ws.stats.gaveUp.Add(1)
}
