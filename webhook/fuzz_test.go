package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/webhook"
)

// FuzzWebhook posts arbitrary deliveries: headers and bodies, unsigned,
// signed with the secret, or signed with another. The receiver must not
// panic, must answer 2xx only to a valid signature (and then have staged
// exactly the body's events under the body's key), must read nothing of
// a body whose signature header it can refuse, and never more than
// MaxBody+1 bytes. It runs on in-memory fakes: no Temporal, no disk.
//
//	go test ./webhook -run '^$' -fuzz FuzzWebhook -fuzztime 10s
func FuzzWebhook(f *testing.F) {
	const maxBody = 4 << 10
	now := time.Unix(1_800_000_000, 0)
	f.Add(uint8(1), "", "dlv_1", []byte(`{"id":"dlv_1","type":"events.batch","events":[{"id":"e1"}]}`))
	f.Add(uint8(0), "t=1800000000,v1=00", "dlv_2", []byte(`{"type":"events.batch","events":[]}`))
	f.Add(uint8(2), "", "\x00\x1b", []byte(`{"type":"events.batch","events":{}}`))
	f.Add(uint8(5), "", "", bytes.Repeat([]byte("["), maxBody+10))
	f.Fuzz(func(t *testing.T, mode uint8, header, deliveryID string, body []byte) {
		store, b := &memStore{}, &batches{}
		rc := &webhook.Receiver{Secret: secret, Store: store, Batches: b, Logger: quiet(),
			MaxBody: maxBody, Now: func() time.Time { return now }}
		signed := false
		switch mode % 4 {
		case 1:
			header, signed = ktsim.Sign(secret, now, body), true
		case 2:
			header = ktsim.Sign("another secret", now, body)
		case 3:
			header = ktsim.Sign(secret, now.Add(-keeptrusts.SignatureTolerance-time.Second), body)
		}
		r := &countingReader{r: bytes.NewReader(body)}
		req := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(r))
		req.ContentLength = int64(len(body))
		if mode&4 != 0 {
			req.ContentLength = -1 // chunked: the receiver learns the size by reading
		}
		req.Header["Keeptrusts-Signature"] = []string{header}
		req.Header["Keeptrusts-Delivery"] = []string{deliveryID}
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)

		read := r.n.Load()
		if read > maxBody+1 {
			t.Fatalf("read %d bytes of the body, cap %d", read, maxBody)
		}
		if _, err := keeptrusts.ParseSignature(header, now); err != nil && read != 0 {
			t.Fatalf("read %d bytes of a body whose signature header is refused (%v)", read, err)
		}
		ok := rec.Code/100 == 2
		if ok && !signed {
			t.Fatalf("answered %d to a delivery without a valid signature", rec.Code)
		}
		if !ok {
			if store.len() != 0 || len(b.added()) != 0 {
				t.Fatalf("answered %d but staged or batched", rec.Code)
			}
			return
		}
		key := webhook.DeliveryKey(body)
		staged, found := store.get(key)
		if added := b.added(); !found || len(added) != 1 || added[0] != key || store.len() != 1 {
			t.Fatalf("accepted: staged %v under %s, batched %v", found, key, added)
		}
		var d struct{ Events json.RawMessage }
		if err := json.Unmarshal(body, &d); err != nil || staged != string(d.Events) {
			t.Fatalf("staged %q, the body's events are %q (%v)", staged, d.Events, err)
		}
	})
}
