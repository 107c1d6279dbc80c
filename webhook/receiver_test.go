package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/webhook"
)

// The refusals never reach staging or Temporal; the accepted path runs in
// integration/webhook_test.go against the real dev server.
func TestReceiverRefusesWhatItCannotTrust(t *testing.T) {
	const secret = "whsec-unit"
	rc := &webhook.Receiver{Secret: secret, Store: staging.Dir{Root: t.TempDir()}}
	good := `{"id":"dlv_1","type":"events.batch","events":[]}`
	tests := []struct {
		name, method, body, delivery, signature string
		status                                  int
		want                                    string
	}{
		{"not a post", http.MethodGet, good, "dlv_1", "", http.StatusMethodNotAllowed, "POST"},
		{"unsigned", http.MethodPost, good, "dlv_1", "", http.StatusUnauthorized, "signature"},
		{"signed by another secret", http.MethodPost, good, "dlv_1", ktsim.Sign("other", time.Now(), []byte(good)), http.StatusUnauthorized, "signature"},
		{"replayed too late", http.MethodPost, good, "dlv_1", ktsim.Sign(secret, time.Now().Add(-10*time.Minute), []byte(good)), http.StatusUnauthorized, "from now"},
		{"no delivery id", http.MethodPost, good, "", ktsim.Sign(secret, time.Now(), []byte(good)), http.StatusBadRequest, "Keeptrusts-Delivery"},
		{"not json", http.MethodPost, "{", "dlv_1", ktsim.Sign(secret, time.Now(), []byte("{")), http.StatusBadRequest, "not a JSON object"},
		{"other type", http.MethodPost, `{"type":"ping"}`, "dlv_1", ktsim.Sign(secret, time.Now(), []byte(`{"type":"ping"}`)), http.StatusBadRequest, "want events.batch"},
		{"events not a list", http.MethodPost, `{"type":"events.batch","events":{}}`, "dlv_1", ktsim.Sign(secret, time.Now(), []byte(`{"type":"events.batch","events":{}}`)), http.StatusBadRequest, "JSON array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/", strings.NewReader(tt.body))
			if tt.delivery != "" {
				req.Header.Set("Keeptrusts-Delivery", tt.delivery)
			}
			if tt.signature != "" {
				req.Header.Set("Keeptrusts-Signature", tt.signature)
			}
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.want) {
				t.Fatalf("%d %q, want %d containing %q", rec.Code, rec.Body.String(), tt.status, tt.want)
			}
			if strings.Contains(rec.Body.String(), secret) {
				t.Fatal("the secret is in the answer")
			}
		})
	}
}

func TestDeliveryKeyIsStableAndSafe(t *testing.T) {
	k := webhook.DeliveryKey("dlv/../../etc 1")
	if k != webhook.DeliveryKey("dlv/../../etc 1") || staging.CheckKey(k) != nil || k == webhook.DeliveryKey("dlv_2") {
		t.Fatalf("key %q", k)
	}
}
