package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/webhook"
)

const secret = "whsec-unit"

// memStore is a webhook.Stager in memory: a file appears on Close, as
// the staging stores promise. The tests stay free of the storage clients
// (and so does FuzzWebhook's binary).
type memStore struct {
	mu        sync.Mutex
	files     map[string]string
	failWrite bool
}

func (m *memStore) Create(_ context.Context, key string) (io.WriteCloser, error) {
	return &memFile{m: m, key: key}, nil
}

func (m *memStore) get(key string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.files[key]
	return s, ok
}

func (m *memStore) snapshot() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := map[string]string{}
	for k, v := range m.files {
		c[k] = v
	}
	return c
}

func (m *memStore) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.files)
}

type memFile struct {
	m      *memStore
	key    string
	buf    bytes.Buffer
	failed bool
}

func (f *memFile) Write(b []byte) (int, error) {
	if f.m.failWrite {
		f.failed = true
		return 0, errors.New("disk full")
	}
	return f.buf.Write(b)
}

func (f *memFile) Close() error {
	if f.failed {
		return errors.New("disk full")
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.m.files == nil {
		f.m.files = map[string]string{}
	}
	f.m.files[f.key] = f.buf.String()
	return nil
}

// batches is a webhook.Batcher that records keys; with hold set, Add
// announces itself on entered and waits for hold to close.
type batches struct {
	mu      sync.Mutex
	keys    []string
	hold    chan struct{}
	entered chan string
}

func (b *batches) Add(_ context.Context, key string, _ time.Time) error {
	if b.entered != nil {
		b.entered <- key
	}
	if b.hold != nil {
		<-b.hold
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys = append(b.keys, key)
	return nil
}

func (b *batches) added() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.keys...)
}

func delivery(id string, events ...string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":"events.batch","created_at":"2026-11-29T12:00:00Z","events":[%s]}`, id, strings.Join(events, ","))
}

// post sends body to h with the given headers (signature "" for none).
func post(h http.Handler, body io.Reader, length int64, deliveryID, signature string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/", body)
	req.ContentLength = length
	if deliveryID != "" {
		req.Header.Set("Keeptrusts-Delivery", deliveryID)
	}
	if signature != "" {
		req.Header.Set("Keeptrusts-Signature", signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func postSigned(h http.Handler, deliveryID string, body []byte) *httptest.ResponseRecorder {
	return post(h, bytes.NewReader(body), int64(len(body)), deliveryID, ktsim.Sign(secret, time.Now(), body))
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The refusals never reach staging or the batch; the accepted path runs
// in integration/webhook_test.go against the real dev server.
func TestReceiverRefusesWhatItCannotTrust(t *testing.T) {
	store, b := &memStore{}, &batches{}
	rc := &webhook.Receiver{Secret: secret, Store: store, Batches: b, Logger: quiet()}
	good := `{"id":"dlv_1","type":"events.batch","events":[]}`
	unauthorized := keeptrusts.ErrBadSignature.Error() + "\n"
	tests := []struct {
		name, method, body, signature string
		status                        int
		want                          string
	}{
		{"not a post", http.MethodGet, good, "", http.StatusMethodNotAllowed, "POST"},
		{"unsigned", http.MethodPost, good, "", http.StatusUnauthorized, unauthorized},
		{"malformed t", http.MethodPost, good, "t=soon,v1=" + strings.Repeat("ab", 32), http.StatusUnauthorized, unauthorized},
		{"short v1", http.MethodPost, good, fmt.Sprintf("t=%d,v1=abcd", time.Now().Unix()), http.StatusUnauthorized, unauthorized},
		{"signed by another secret", http.MethodPost, good, ktsim.Sign("other", time.Now(), []byte(good)), http.StatusUnauthorized, unauthorized},
		// Neither too late nor too early may say by how much: that is the
		// server's clock.
		{"replayed too late", http.MethodPost, good, ktsim.Sign(secret, time.Now().Add(-10*time.Minute), []byte(good)), http.StatusUnauthorized, unauthorized},
		{"from the future", http.MethodPost, good, ktsim.Sign(secret, time.Now().Add(10*time.Minute), []byte(good)), http.StatusUnauthorized, unauthorized},
		{"not json", http.MethodPost, "{", ktsim.Sign(secret, time.Now(), []byte("{")), http.StatusBadRequest, "delivery: want a JSON object"},
		{"other type", http.MethodPost, `{"type":"ping"}`, ktsim.Sign(secret, time.Now(), []byte(`{"type":"ping"}`)), http.StatusBadRequest, "type: want events.batch"},
		{"events not a list", http.MethodPost, `{"type":"events.batch","events":{}}`, ktsim.Sign(secret, time.Now(), []byte(`{"type":"events.batch","events":{}}`)), http.StatusBadRequest, "events: want a JSON array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/", strings.NewReader(tt.body))
			req.Header.Set("Keeptrusts-Delivery", "dlv_1")
			if tt.signature != "" {
				req.Header.Set("Keeptrusts-Signature", tt.signature)
			}
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			got := rec.Body.String()
			if rec.Code != tt.status || (tt.status == http.StatusUnauthorized && got != tt.want) || !strings.Contains(got, tt.want) {
				t.Fatalf("%d %q, want %d with %q", rec.Code, got, tt.status, tt.want)
			}
			if strings.Contains(got, secret) {
				t.Fatal("the secret is in the answer")
			}
			// Else the sender could keep the connection, and with enough
			// of them every connection Listen allows.
			if c := rec.Header().Get("Connection"); c != "close" {
				t.Fatalf("Connection: %q, want close", c)
			}
		})
	}
	if store.len() != 0 || len(b.added()) != 0 {
		t.Fatalf("a refused delivery was staged (%d) or batched (%v)", store.len(), b.added())
	}
}

// countingReader counts the bytes the receiver took from a body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// What can be refused from the headers is refused before one byte of the
// body is read: an unsigned 30 MB upload costs the receiver nothing.
func TestReceiverRefusesBeforeReadingTheBody(t *testing.T) {
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{}, Logger: quiet(), MaxBody: 1 << 20}
	big := bytes.Repeat([]byte("x"), 30<<20)
	now := time.Now()
	tests := []struct {
		name, signature string
		length          int64
		status          int
	}{
		{"no signature", "", int64(len(big)), http.StatusUnauthorized},
		{"malformed signature", "v1=zz", int64(len(big)), http.StatusUnauthorized},
		{"no v1", fmt.Sprintf("t=%d", now.Unix()), int64(len(big)), http.StatusUnauthorized},
		{"stale", ktsim.Sign(secret, now.Add(-time.Hour), big), int64(len(big)), http.StatusUnauthorized},
		{"declared too large", ktsim.Sign(secret, now, big), int64(len(big)), http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingReader{r: bytes.NewReader(big)}
			rec := post(rc, body, tt.length, "dlv_1", tt.signature)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			if n := body.n.Load(); n != 0 {
				t.Fatalf("read %d bytes of the body before refusing it", n)
			}
		})
	}
}

// A body of undeclared length is read up to MaxBody (and one byte to
// know it is over), then refused with 413; one at the cap is taken.
func TestReceiverCapsTheBody(t *testing.T) {
	const max = 64 << 10
	store, b := &memStore{}, &batches{}
	rc := &webhook.Receiver{Secret: secret, Store: store, Batches: b, Logger: quiet(), MaxBody: max}

	over := bytes.Repeat([]byte(" "), 10*max) // signed, whitespace-padded: would be a valid delivery
	over = append(over, delivery("dlv_big")...)
	body := &countingReader{r: bytes.NewReader(over)}
	rec := post(rc, body, -1, "dlv_big", ktsim.Sign(secret, time.Now(), over))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", rec.Code)
	}
	if n := body.n.Load(); n > max+1 {
		t.Fatalf("read %d bytes, cap %d", n, max)
	}

	atCap := delivery("dlv_cap", `{"id":"e1"}`)
	atCap = append(bytes.Repeat([]byte(" "), max-len(atCap)), atCap...)
	if rec := post(rc, bytes.NewReader(atCap), -1, "dlv_cap", ktsim.Sign(secret, time.Now(), atCap)); rec.Code != http.StatusAccepted {
		t.Fatalf("a delivery of exactly MaxBody: %d %s", rec.Code, rec.Body)
	}
}

// The key comes from the signed body: a captured delivery replayed under
// another delivery's id rewrites only its own file (with its own events),
// and a resent delivery maps to the same key, so it stays one file.
func TestReplayUnderAnotherDeliveryIDCannotOverwrite(t *testing.T) {
	store, b := &memStore{}, &batches{}
	rc := &webhook.Receiver{Secret: secret, Store: store, Batches: b, Logger: quiet()}
	a := delivery("dlv_a", `{"id":"a1"}`)
	bb := delivery("dlv_b", `{"id":"b1"}`, `{"id":"b2"}`)
	for id, body := range map[string][]byte{"dlv_a": a, "dlv_b": bb} {
		if rec := postSigned(rc, id, body); rec.Code != http.StatusAccepted || rec.Header().Get("Connection") != "" {
			t.Fatalf("%s: %d %s Connection: %q; want 202 keeping the connection", id, rec.Code, rec.Body, rec.Header().Get("Connection"))
		}
	}
	keyA, keyB := webhook.DeliveryKey(a), webhook.DeliveryKey(bb)
	if keyA == keyB {
		t.Fatal("two deliveries share a key")
	}
	before := store.snapshot()

	// The attacker's replay: a's signed body, b's delivery id.
	if rec := postSigned(rc, "dlv_b", a); rec.Code != http.StatusAccepted {
		t.Fatalf("replay: %d", rec.Code)
	}
	for k, v := range before {
		if got, _ := store.get(k); got != v {
			t.Fatalf("the replay rewrote %s: %q, was %q", k, got, v)
		}
	}
	if got, _ := store.get(keyB); got != `[{"id":"b1"},{"id":"b2"}]` {
		t.Fatalf("b's staged events: %q", got)
	}
	// The sender's resend of a, with a's id: the same key again.
	if rec := postSigned(rc, "dlv_a", a); rec.Code != http.StatusAccepted {
		t.Fatalf("resend: %d", rec.Code)
	}
	if store.len() != 2 {
		t.Fatalf("%d files staged, want 2", store.len())
	}
	added := b.added()
	if len(added) != 4 || added[2] != keyA || added[3] != keyA {
		t.Fatalf("batched %v", added)
	}
	for _, k := range []string{keyA, keyB} {
		if !regexp.MustCompile(`^webhooks/[0-9a-f]{32}\.json$`).MatchString(k) {
			t.Fatalf("key %q", k)
		}
	}
}

// A delivery whose staging fails is not batched and gets 503 with
// Retry-After, so the sender retries it.
func TestReceiverAnswers503WhenStagingFails(t *testing.T) {
	b := &batches{}
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{failWrite: true}, Batches: b, Logger: quiet()}
	rec := postSigned(rc, "dlv_1", delivery("dlv_1", `{"id":"e1"}`))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("%d Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if len(b.added()) != 0 {
		t.Fatal("a delivery that was not staged was batched")
	}
}

// Beyond MaxInFlight, a delivery that verified is refused with 503 and
// Retry-After before it is staged; the ones in flight finish.
func TestReceiverBoundsDeliveriesInFlight(t *testing.T) {
	b := &batches{hold: make(chan struct{}), entered: make(chan string, 10)}
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: b, Logger: quiet(), MaxInFlight: 2}
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for i := range 2 {
		wg.Go(func() { codes <- postSigned(rc, "dlv", delivery(fmt.Sprint("dlv_", i), `{"id":"e"}`)).Code })
	}
	<-b.entered
	<-b.entered // both are staged and waiting on their batch

	third := make(chan *httptest.ResponseRecorder, 1)
	body := &countingReader{r: bytes.NewReader(delivery("dlv_3"))}
	go func() {
		third <- post(rc, body, -1, "dlv_3", ktsim.Sign(secret, time.Now(), delivery("dlv_3")))
	}()
	select {
	case rec := <-third:
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("third delivery: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
		}
	case <-b.entered:
		t.Error("a third delivery was taken beyond MaxInFlight 2")
	}
	close(b.hold)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusAccepted {
			t.Fatalf("a delivery in flight got %d", c)
		}
	}
	if rec := postSigned(rc, "dlv_4", delivery("dlv_4")); rec.Code != http.StatusAccepted {
		t.Fatalf("after the others finished: %d", rec.Code)
	}
}

// Beyond MaxInFlightBytes, a delivery is refused with 503 as soon as its
// buffer would not fit (here at its first, unread, as the budget is
// nearly spent), however few deliveries are in flight; a smaller one that
// fits is taken.
func TestReceiverBoundsBytesInFlight(t *testing.T) {
	b := &batches{hold: make(chan struct{}), entered: make(chan string, 10)}
	pad := func(id string, n int) []byte { // a delivery of n bytes
		d := delivery(id, `{"id":"e","x":""}`)
		return delivery(id, `{"id":"e","x":"`+strings.Repeat("p", n-len(d))+`"}`)
	}
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: b, Logger: quiet(),
		MaxBody: 1000, MaxInFlightBytes: 1000}
	first := make(chan int, 1)
	go func() { first <- postSigned(rc, "dlv_1", pad("dlv_1", 600)).Code }()
	<-b.entered // 600 bytes held, waiting on its batch

	refused := func(name string, body []byte, length int64) {
		t.Helper()
		counted := &countingReader{r: bytes.NewReader(body)}
		answer := make(chan *httptest.ResponseRecorder, 1)
		go func() { answer <- post(rc, counted, length, name, ktsim.Sign(secret, time.Now(), body)) }()
		select {
		case rec := <-answer:
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || counted.n.Load() != 0 {
				t.Errorf("%s: %d, Retry-After %q, %d bytes read; want 503 with Retry-After, unread",
					name, rec.Code, rec.Header().Get("Retry-After"), counted.n.Load())
			}
		case <-b.entered:
			t.Fatalf("%s was taken beyond MaxInFlightBytes", name)
		}
	}
	refused("dlv_2", pad("dlv_2", 500), 500) // 600 + 500 > 1000
	refused("dlv_3", pad("dlv_3", 300), -1)  // its first buffer (512 bytes) does not fit
	small := make(chan int, 1)
	go func() { small <- postSigned(rc, "dlv_4", pad("dlv_4", 300)).Code }()
	select {
	case k := <-b.entered: // 600 + 300 fit
		if k == "" {
			t.Fatal("empty key")
		}
	case code := <-small:
		t.Fatalf("a delivery that fits got %d before its batch", code)
	}
	close(b.hold)
	if c1, c4 := <-first, <-small; c1 != http.StatusAccepted || c4 != http.StatusAccepted {
		t.Fatalf("deliveries in flight got %d and %d", c1, c4)
	}
	if rec := postSigned(rc, "dlv_2", pad("dlv_2", 500)); rec.Code != http.StatusAccepted {
		t.Fatalf("after the others finished: %d", rec.Code)
	}
}

// A refusal is logged with a bounded, sanitised view of the request:
// header values cut short and stripped of control characters, never the
// body or the secret.
func TestRefusalLogIsBounded(t *testing.T) {
	var log bytes.Buffer
	huge := "\x1b[2J" + strings.Repeat("d", 1<<20)
	body := []byte(`{"type":"events.batch","events":[],"note":"BODY-MARKER"}`)
	for _, sig := range []string{
		"t=1," + huge,                              // malformed: refused before the body
		ktsim.Sign("other", time.Now(), body),      // read, then refused
		strings.Repeat("v1=", 1<<18) + "t=" + huge, // huge signature header
	} {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Keeptrusts-Delivery", huge)
		req.Header.Set("User-Agent", huge)
		req.Header.Set("Keeptrusts-Signature", sig)
		rec := httptest.NewRecorder()
		// A receiver each: one would log the first refusal of the second
		// only (see TestRefusalLogIsRateLimited).
		rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{},
			Logger: slog.New(slog.NewTextHandler(&log, nil))}
		rc.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("status %d", rec.Code)
		}
	}
	out := log.String()
	if lines := strings.Count(out, "\n"); lines != 3 || len(out) > 3*1024 {
		t.Fatalf("%d log lines, %d bytes; want 3 lines within 3 KiB", lines, len(out))
	}
	for _, bad := range []string{"\x1b", "BODY-MARKER", secret, strings.Repeat("d", 100)} {
		if strings.Contains(out, bad) {
			t.Fatalf("the log shows %q:\n%s", bad[:min(len(bad), 20)], out)
		}
	}
}

// hangingStore is a staging store on a mount that hangs: Create ignores
// its context and returns when released.
type hangingStore struct{ release chan struct{} }

func (h hangingStore) Create(context.Context, string) (io.WriteCloser, error) {
	<-h.release
	return nil, errors.New("mount gone")
}

// A store that does not return by the staging deadline is named in the
// log while the delivery holds its slot (it cannot be interrupted).
func TestReceiverSaysWhenStagingHangs(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var logged syncBuffer
	rc := &webhook.Receiver{Secret: secret, Store: hangingStore{release}, Batches: &batches{}, Logger: slog.New(slog.NewTextHandler(&logged, nil))}
	done := make(chan int, 1)
	go func() { done <- postSigned(rc, "dlv_h", delivery("dlv_h", `{"id":"e"}`)).Code }()
	for give := time.Now().Add(30 * time.Second); !strings.Contains(logged.String(), "still staging or batching past its deadline"); {
		if time.Now().After(give) {
			close(release)
			t.Fatalf("no log line while staging hung; logged %q", logged.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(release)
	if code := <-done; code != http.StatusServiceUnavailable {
		t.Errorf("the delivery whose staging failed got %d, want 503", code)
	}
}
