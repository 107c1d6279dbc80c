// Package webhook receives Keeptrusts webhook deliveries: it verifies
// each one, stages its events, and hands the staging key to the batch
// that loads the deliveries of its time window. Only a staging key
// travels onwards; the events stay in staging.
//
// The package imports neither Temporal nor the storage clients: a
// Receiver takes small interfaces (app wires the real ones), so it can be
// fuzzed quickly and run in a process of its own.
package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ktpipe/ktpipe/keeptrusts"
)

// Limits of one receiver. The contract states no size for a delivery; it
// says a sender gives up on an answer after 10 s and retries any non-2xx
// for 24 h.
const (
	// DefaultMaxBody bounds one delivery's body: 8 MiB is about 16,000
	// events at the ~500 bytes an event measures as JSON, well above the
	// API's largest unit (a page of 10,000 events, ~5 MB). A bigger
	// delivery is refused with 413; the hourly pull still loads its events.
	DefaultMaxBody = 8 << 20
	// DefaultMaxInFlight bounds the deliveries being read, staged and
	// signalled at once, whatever their size: goroutines, open staging
	// files and keys waiting for their batch's signal. A delivery waits
	// tens of milliseconds for its signal, so the bound must be well
	// above the deliveries a second times that wait: 64 serve 200 a
	// second with room to spare. The excess gets 503 with Retry-After,
	// which the sender retries.
	DefaultMaxInFlight = 64
	// DefaultMaxInFlightBytes bounds the body buffers in flight: a
	// delivery's buffer grows as its bytes arrive and each growth is
	// charged before it is made, so a sender that declares a length and
	// stalls holds only what it sent (up to twice that, as the buffer
	// doubles; at least minBuffer), never what it declared. Deliveries
	// hold at most twice this (the body and the events copied out of
	// it): 64 MiB, four deliveries of DefaultMaxBody or thousands of
	// small ones.
	DefaultMaxInFlightBytes = 32 << 20
	// minBuffer is a body buffer's first size (bytes.MinRead): a
	// delivery that has sent nothing yet holds no more than this.
	minBuffer = 512
	// stageTimeout bounds staging and signalling one delivery: past the
	// sender's 10 s it has given up and will retry anyway.
	stageTimeout = 10 * time.Second
	// hangGrace: past stageTimeout and this, a delivery still staging is
	// logged as a store that may hang.
	hangGrace = 5 * time.Second
	// retryAfter is what a 503 asks the sender to wait, in seconds.
	retryAfter = "5"
	// logValueMax bounds each header value a refusal log line shows.
	logValueMax = 64
	// refusalLogEvery bounds the refusal log, and the log of the
	// connection cap (Listen), to one line a second each: anyone can be
	// refused, or fill the cap, as fast as they can send; the next line
	// counts those left out, and the answers metric counts every refusal.
	refusalLogEvery = time.Second
)

// Stager keeps a delivery's events under a key; staging.Store is one.
// What Create returns must publish its content only when Close succeeds,
// and only once it is durable.
type Stager interface {
	Create(ctx context.Context, key string) (io.WriteCloser, error)
}

// Batcher hands a staged delivery's key to the batch that loads it (in
// the worker: signal-with-start of the WebhookBatch workflow of the
// delivery's window, see app.WebhookBatches).
type Batcher interface {
	Add(ctx context.Context, key string, received time.Time) error
}

// Receiver is the http.Handler a Keeptrusts webhook subscription posts
// to. Serve it with NewServer, which bounds time per connection; the
// Receiver bounds bytes per delivery and deliveries in flight.
type Receiver struct {
	Secret  string // the subscription's signing secret; never in an answer or a log line
	Store   Stager
	Batches Batcher
	Logger  *slog.Logger
	Now     func() time.Time // default time.Now
	// MaxBody bounds one delivery's body in bytes (default DefaultMaxBody).
	MaxBody int64
	// MaxInFlight bounds deliveries handled at once (default
	// DefaultMaxInFlight).
	MaxInFlight int
	// MaxInFlightBytes bounds the body bytes held at once, charged as
	// they arrive (default DefaultMaxInFlightBytes; at least MaxBody, so
	// that one delivery of any size fits).
	MaxInFlightBytes int64

	inFlight      atomic.Int64
	inFlightBytes atomic.Int64

	refusals logLimit
}

// logLimit lets a log line through at most once every refusalLogEvery
// and counts the lines it held back, for the next line to report.
type logLimit struct {
	mu         sync.Mutex
	at         time.Time // when the last line was let through
	suppressed int       // lines held back since then
}

// allow reports whether a line may be written now and, if so, how many
// were held back before it.
func (l *logLimit) allow() (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.at.IsZero() && now.Sub(l.at) < refusalLogEvery {
		l.suppressed++
		return 0, false
	}
	suppressed, l.at, l.suppressed = l.suppressed, now, 0
	return suppressed, true
}

// DeliveryKey is where a delivery's events are staged: derived from the
// signed body, never from an unsigned header, so a captured delivery
// replayed under another Keeptrusts-Delivery id can only rewrite its own
// file with its own events. A retried delivery (the same body) rewrites
// the same file, and its events dedup like any resend.
func DeliveryKey(body []byte) string {
	sum := sha256.Sum256(body)
	return "webhooks/" + hex.EncodeToString(sum[:16]) + ".json"
}

// ServeHTTP answers 202 once the delivery's events are durably staged and
// handed to their batch. Before reading the body it refuses a missing,
// malformed or stale signature (401) and a declared body over MaxBody
// (413); while reading, a body over MaxBody (413) and one whose bytes
// would pass MaxInFlightBytes (503 with Retry-After); then 401 to a
// signature that does not verify, 503 with Retry-After to a delivery
// beyond MaxInFlight, 400 to a malformed delivery, and 503 when staging
// or the batch fail, so that the sender retries.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rc.refuse(w, r, http.StatusMethodNotAllowed, "POST a delivery", nil)
		return
	}
	now := time.Now
	if rc.Now != nil {
		now = rc.Now
	}
	sig, err := keeptrusts.ParseSignature(r.Header.Get("Keeptrusts-Signature"), now())
	if err != nil {
		// The same answer for every reason: the body must not tell a
		// caller how far its t is from this server's clock.
		rc.refuse(w, r, http.StatusUnauthorized, keeptrusts.ErrBadSignature.Error(), err)
		return
	}
	maxBody := rc.maxBody()
	if r.ContentLength > maxBody {
		rc.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("a delivery is at most %d bytes", maxBody), nil)
		return
	}
	var held int64 // body bytes charged to the in-flight budget
	defer func() { rc.inFlightBytes.Add(-held) }()
	take := func(n int64) bool {
		if rc.inFlightBytes.Add(n) > rc.maxInFlightBytes() {
			rc.inFlightBytes.Add(-n)
			return false
		}
		held += n
		return true
	}

	body, err := readBody(r.Body, r.ContentLength, maxBody, take)
	if errors.Is(err, errTooLarge) {
		rc.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("a delivery is at most %d bytes", maxBody), nil)
		return
	}
	if errors.Is(err, errBusy) {
		w.Header().Set("Retry-After", retryAfter)
		rc.refuse(w, r, http.StatusServiceUnavailable, "too many delivery bytes at once, retry later", err)
		return
	}
	if err != nil {
		rc.refuse(w, r, http.StatusBadRequest, "could not read the body", err)
		return
	}
	if err := sig.Verify(rc.Secret, body); err != nil {
		rc.refuse(w, r, http.StatusUnauthorized, keeptrusts.ErrBadSignature.Error(), err)
		return
	}
	// A slot is taken only now, by a delivery that verified: the bytes
	// bound reading, and a sender without the secret that stalls holds
	// no slot a real delivery needs.
	if !rc.enter() {
		w.Header().Set("Retry-After", retryAfter)
		rc.refuse(w, r, http.StatusServiceUnavailable, "too many deliveries at once, retry later", nil)
		return
	}
	defer rc.inFlight.Add(-1)
	var d struct {
		Type   string          `json:"type"`
		Events json.RawMessage `json:"events"`
	}
	// Signed but malformed: the sender's bug, retried for 24 h, so it is
	// answered and logged naming the field and the rule it breaks.
	if err := json.Unmarshal(body, &d); err != nil {
		rc.refuse(w, r, http.StatusBadRequest, "delivery: want a JSON object", err)
		return
	}
	if d.Type != "events.batch" {
		rc.refuse(w, r, http.StatusBadRequest, "type: want events.batch", fmt.Errorf("type is %q", sanitize(d.Type)))
		return
	}
	if len(d.Events) == 0 || d.Events[0] != '[' {
		rc.refuse(w, r, http.StatusBadRequest, "events: want a JSON array", nil)
		return
	}
	key := DeliveryKey(body)
	ctx, cancel := context.WithTimeout(r.Context(), stageTimeout)
	defer cancel()
	// A directory store's writes cannot be interrupted: on a hung mount
	// the delivery keeps its slot past the deadline, and once every slot
	// is held all deliveries get 503. Say so while it hangs.
	// The grace lets a store or a batch that honours the deadline unwind
	// first and answer "not taken" without this line.
	hung := time.AfterFunc(stageTimeout+hangGrace, func() {
		rc.log().Error("webhook delivery still staging or batching past its deadline; the staging store may hang, and the delivery holds its slot (KTPIPE_WEBHOOK_MAX_IN_FLIGHT) until it returns",
			"key", key, "deadline", stageTimeout)
	})
	defer hung.Stop()
	if err := rc.stageAndAdd(ctx, key, d.Events, now()); err != nil {
		rc.log().Error("webhook delivery not taken; the sender will retry",
			"delivery", sanitize(r.Header.Get("Keeptrusts-Delivery")), "key", key, "error", err)
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, "delivery not taken, retry later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// stageAndAdd writes the events before handing their key on, so a batch
// never gets a key without its file. Close publishes the file only once
// it is durable, and never after a failed write.
func (rc *Receiver) stageAndAdd(ctx context.Context, key string, events []byte, now time.Time) error {
	f, err := rc.Store.Create(ctx, key)
	if err != nil {
		return err
	}
	_, werr := f.Write(events)
	if err := f.Close(); err != nil || werr != nil {
		return fmt.Errorf("stage %s: %w", key, errors.Join(werr, err))
	}
	if err := rc.Batches.Add(ctx, key, now); err != nil {
		return fmt.Errorf("add %s to its batch: %w", key, err)
	}
	return nil
}

var (
	errTooLarge = errors.New("body too large")
	errBusy     = errors.New("in-flight byte budget spent")
)

// readBody reads a body of at most maxBody bytes into a buffer that
// grows as bytes arrive: it doubles (from minBuffer), but never past the
// declared length, or maxBody when none is declared, so a body of
// exactly maxBody holds maxBody bytes. take charges each growth to the
// in-flight budget before it is made; when it refuses, readBody fails
// with errBusy.
func readBody(r io.Reader, declared, maxBody int64, take func(int64) bool) ([]byte, error) {
	limit := maxBody
	if declared >= 0 && declared < maxBody {
		limit = declared
	}
	var buf []byte
	for {
		if int64(len(buf)) == limit {
			// Full: any further byte is one too many.
			var probe [1]byte
			_, err := io.ReadFull(r, probe[:])
			switch {
			case err == io.EOF:
				return buf, nil
			case err != nil:
				return nil, fmt.Errorf("read body: %w", err)
			case limit == maxBody:
				return nil, errTooLarge
			}
			return nil, fmt.Errorf("read body: longer than its declared %d bytes", declared)
		}
		if len(buf) == cap(buf) {
			size := min(max(2*int64(cap(buf)), minBuffer), limit)
			if !take(size - int64(cap(buf))) {
				return nil, fmt.Errorf("read body at %d bytes: %w", len(buf), errBusy)
			}
			buf = append(make([]byte, 0, size), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
	}
}

// refuse answers status with a fixed message, closes the connection and
// logs a bounded, sanitised view of the request: never its body, and
// each header value cut to logValueMax characters without control
// characters; at most one line every refusalLogEvery, which counts the
// refusals left out.
func (rc *Receiver) refuse(w http.ResponseWriter, r *http.Request, status int, msg string, reason error) {
	// Closing after every refusal keeps a sender without the secret from
	// holding one of Listen's connections request after request (each
	// would restart the idle timeout): only a verified delivery keeps
	// its connection. Before closing, net/http reads at most 256 KiB of
	// a body left unread, within the read timeout.
	w.Header().Set("Connection", "close")
	http.Error(w, msg, status)
	suppressed, ok := rc.refusals.allow()
	if !ok {
		return
	}
	attrs := []any{"status", status, "answer", msg, "method", sanitize(r.Method), "remote", sanitize(r.RemoteAddr),
		"delivery", sanitize(r.Header.Get("Keeptrusts-Delivery")),
		"user_agent", sanitize(r.Header.Get("User-Agent")),
		"content_length", r.ContentLength,
		"signature_bytes", len(r.Header.Get("Keeptrusts-Signature"))}
	if reason != nil {
		attrs = append(attrs, "reason", sanitize(reason.Error()))
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	rc.log().Warn("webhook delivery refused", attrs...)
}

// sanitize returns at most logValueMax printable characters of s, noting
// how long s was when it cut.
func sanitize(s string) string {
	var b strings.Builder
	n := 0
	for _, c := range s {
		if n == logValueMax {
			return b.String() + "…(" + strconv.Itoa(len(s)) + " bytes)"
		}
		if c == utf8.RuneError || !unicode.IsPrint(c) {
			c = '?'
		}
		b.WriteRune(c)
		n++
	}
	return b.String()
}

func (rc *Receiver) maxBody() int64 {
	if rc.MaxBody > 0 {
		return rc.MaxBody
	}
	return DefaultMaxBody
}

// enter takes a place for a delivery among those in flight, or says
// there is none; its bytes are charged as they arrive (readBody).
func (rc *Receiver) enter() bool {
	if n := rc.inFlight.Add(1); n > int64(rc.maxInFlight()) {
		rc.inFlight.Add(-1)
		return false
	}
	return true
}

func (rc *Receiver) maxInFlightBytes() int64 {
	n := rc.MaxInFlightBytes
	if n <= 0 {
		n = DefaultMaxInFlightBytes
	}
	return max(n, rc.maxBody())
}

func (rc *Receiver) maxInFlight() int {
	if rc.MaxInFlight > 0 {
		return rc.MaxInFlight
	}
	return DefaultMaxInFlight
}

func (rc *Receiver) log() *slog.Logger {
	if rc.Logger != nil {
		return rc.Logger
	}
	return slog.Default()
}
