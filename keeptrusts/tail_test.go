package keeptrusts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/keeptrusts"
)

// flakySSE is an event stream written for this test, independent of
// ktsim: it serves events 1..total (the cursor after event n is "c<n>")
// from the Last-Event-ID it is sent, and drops every connection after a
// few events in one of several awkward places. It checks that each
// reconnect resumes from the last id it fully delivered.
type flakySSE struct {
	t     *testing.T
	total int
	retry string // the first connection's retry: field

	mu        sync.Mutex
	conns     int
	committed string // the last event id of a message delivered whole
	drops     map[string]int
}

func (s *flakySSE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.conns++
	k := s.conns
	if got := r.Header.Get("Last-Event-ID"); got != s.committed {
		s.t.Errorf("connection %d: Last-Event-ID %q, want %q (the last id delivered)", k, got, s.committed)
	}
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+token {
		s.t.Errorf("connection %d without the token", k)
	}
	if k == 6 {
		http.Error(w, `{"error":{"code":"internal","message":"try again"}}`, http.StatusInternalServerError)
		return
	}
	start := 0
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		start, _ = strconv.Atoi(strings.TrimPrefix(id, "c"))
	}
	eol := []string{"\n", "\r\n", "\r"}[k%3]
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	var b strings.Builder
	line := func(s string) { b.WriteString(s + eol) }
	send := func() {
		w.Write([]byte(b.String()))
		w.(http.Flusher).Flush()
		b.Reset()
	}
	commit := func(id string) {
		send()
		s.mu.Lock()
		s.committed = id
		s.mu.Unlock()
	}
	if k == 1 {
		b.WriteString("\xEF\xBB\xBF") // a BOM, allowed once at the start
		line("retry: " + s.retry)
	}
	if k == 3 {
		line("retry: soon") // not digits: ignored
	}
	line(": keepalive")
	line("")
	send()

	// event writes event n without its blank line, in one of three shapes:
	// JSON spread over data: lines, one line, or (withID false) no id.
	event := func(n int, withID bool) {
		if withID {
			line(fmt.Sprintf("id: c%d", n))
		}
		line("event: event")
		if n%2 == 0 {
			line("data: {")
			line(fmt.Sprintf(`data:   "n": %d,`, n))
			line(`data:   "note": "split: across lines"`)
			line("data: }")
		} else {
			line(fmt.Sprintf(`data:{"n":%d,`, n)) // no space after the colon
			line(": a comment inside an event")
			line(`data: "note":"one"}`)
		}
	}
	n := start
	for range 1 + k%3 {
		if n == s.total {
			<-r.Context().Done() // all sent: an idle stream until the client leaves
			return
		}
		n++
		if n%3 == 0 { // an event without id, then an id-only message
			event(n, false)
			line("")
			send()
			line(fmt.Sprintf("id: c%d", n))
			line("")
			commit(fmt.Sprintf("c%d", n))
		} else {
			event(n, true)
			line("")
			commit(fmt.Sprintf("c%d", n))
		}
	}
	mode := []string{"mid-event", "before the blank line", "after an id-only message", "mid-line"}[k%4]
	if n < s.total {
		switch mode {
		case "mid-event":
			line(fmt.Sprintf("id: c%d", n+1))
			line(fmt.Sprintf(`data: {"n": %d,`, n+1))
		case "before the blank line":
			event(n+1, true)
		case "after an id-only message":
			event(n+1, false)
			line("")
			line(fmt.Sprintf("id: c%d", n+1))
			line("")
			commit(fmt.Sprintf("c%d", n+1))
		case "mid-line":
			b.WriteString(`data: {"n": 99`)
		}
		send()
		s.mu.Lock()
		s.drops[mode]++
		s.mu.Unlock()
	}
	if k%2 == 1 {
		panic(http.ErrAbortHandler) // a broken connection, not a clean end
	}
}

func TestTailResumesAcrossDroppedConnections(t *testing.T) {
	const total = 80
	sse := &flakySSE{t: t, total: total, retry: "120", drops: map[string]int{}}
	srv := server(t, sse.ServeHTTP)
	c := client(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var waits []time.Duration
	next := 1
	done := errors.New("done")
	err := c.Tail(ctx, keeptrusts.TailOptions{
		OnReconnect: func(wait time.Duration, _ string, _ error) { waits = append(waits, wait) },
	}, func(m keeptrusts.TailMessage) error {
		var ev struct {
			N    int    `json:"n"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return fmt.Errorf("event data is not one JSON object: %v: %q", err, m.Data)
		}
		if ev.N != next {
			return fmt.Errorf("got event %d, want %d (a gap or a repeat)", ev.N, next)
		}
		if ev.N%2 == 0 && !strings.Contains(string(m.Data), "\n") {
			return fmt.Errorf("event %d: data: lines not joined with \\n: %q", ev.N, m.Data)
		}
		// The cursor is the stream's last id: this event's, or for an event
		// sent without id, the previous one's.
		if m.Cursor != fmt.Sprintf("c%d", ev.N) && m.Cursor != fmt.Sprintf("c%d", ev.N-1) {
			return fmt.Errorf("event %d: cursor %q", ev.N, m.Cursor)
		}
		if next == total {
			return done
		}
		next++
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("tail: %v (at event %d)", err, next)
	}
	for _, mode := range []string{"mid-event", "before the blank line", "after an id-only message", "mid-line"} {
		if sse.drops[mode] < 2 {
			t.Errorf("dropped %s only %d times; the test does not exercise it", mode, sse.drops[mode])
		}
	}
	if len(waits) < 20 || len(waits) != sse.conns-1 {
		t.Fatalf("%d reconnects for %d connections", len(waits), sse.conns)
	}
	for i, w := range waits {
		if w != 120*time.Millisecond {
			t.Fatalf("reconnect %d waited %v, want the stream's retry: 120 (ms)", i+1, w)
		}
	}
}

// A retry: field larger than any sane wait is clamped, like Retry-After.
func TestTailClampsRetry(t *testing.T) {
	sse := &flakySSE{t: t, total: 3, retry: "9000000000000", drops: map[string]int{}}
	srv := server(t, sse.ServeHTTP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wait time.Duration
	err := client(t, srv.URL).Tail(ctx, keeptrusts.TailOptions{
		OnReconnect: func(w time.Duration, _ string, _ error) { wait = w; cancel() },
	}, func(keeptrusts.TailMessage) error { return nil })
	if !errors.Is(err, context.Canceled) || wait != keeptrusts.MaxRetryAfter {
		t.Fatalf("err %v, wait %v, want %v", err, wait, keeptrusts.MaxRetryAfter)
	}
}

// retry: 0 (or anything under the floor) cannot make the client reconnect
// in a busy loop.
func TestTailFloorsRetry(t *testing.T) {
	sse := &flakySSE{t: t, total: 3, retry: "0", drops: map[string]int{}}
	srv := server(t, sse.ServeHTTP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wait time.Duration
	err := client(t, srv.URL).Tail(ctx, keeptrusts.TailOptions{
		OnReconnect: func(w time.Duration, _ string, _ error) { wait = w; cancel() },
	}, func(keeptrusts.TailMessage) error { return nil })
	if !errors.Is(err, context.Canceled) || wait != keeptrusts.MinSSERetry {
		t.Fatalf("err %v, wait %v, want %v", err, wait, keeptrusts.MinSSERetry)
	}
}

// A stream that goes silent (no event, no keepalive) is abandoned after
// the idle-read bound and resumed, instead of pinning the tail.
func TestTailReconnectsASilentStream(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "retry: 1\nid: c%d\ndata: {\"n\":%d}\n\n", n, n)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then silence
	})
	c := client(t, srv.URL, keeptrusts.WithTimeouts(keeptrusts.Timeouts{IdleRead: 50 * time.Millisecond}))
	var causes []error
	err := c.Tail(guard(t), keeptrusts.TailOptions{
		OnReconnect: func(_ time.Duration, _ string, cause error) { causes = append(causes, cause) },
	}, func(m keeptrusts.TailMessage) error {
		if string(m.Data) == `{"n":3}` {
			return io.EOF
		}
		return nil
	})
	if !errors.Is(err, io.EOF) {
		t.Fatalf("tail: %v", err)
	}
	if strings.Join(lastIDs, ",") != ",c1,c2" {
		t.Fatalf("Last-Event-IDs %q", lastIDs)
	}
	for _, cause := range causes {
		timeoutErr(t, cause, "idle read")
	}
}
