package keeptrusts_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/keeptrusts"
)

type recorder struct {
	mu       sync.Mutex
	requests []string
	waited   time.Duration
}

func (r *recorder) Request(op string, status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, fmt.Sprintf("%s %d %v", op, status, err != nil))
}

func (r *recorder) RetryAfter(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waited += d
}

// Every request reaches the observer with its status, and a 429's
// Retry-After with it; a request with no response comes as status 0.
func TestObserverSeesEveryRequest(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		switch n {
		case 1:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			fmt.Fprint(w, `{"count": 7}`)
		}
	}))
	rec := &recorder{}
	c, err := keeptrusts.New(srv.URL, "tok", keeptrusts.WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		c.Count(ctx, keeptrusts.Window{Since: "1h"})
	}
	srv.Close()
	c.Count(ctx, keeptrusts.Window{Since: "1h"}) // connection refused
	want := []string{"count events 429 false", "count events 500 false", "count events 200 false", "count events 0 true"}
	if fmt.Sprint(rec.requests) != fmt.Sprint(want) || rec.waited != 3*time.Second {
		t.Fatalf("observed %q, waited %s; want %q, 3s", rec.requests, rec.waited, want)
	}
}

// A 200 whose body then stalls is a failed call: observed when the body
// ends, with its error and no status, so the run of consecutive failures
// (KtpipeAPIFailures) grows; a body read to its end is a success.
func TestObserverSeesABodyThatFails(t *testing.T) {
	var stall atomic.Bool
	stall.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !stall.Load() {
			fmt.Fprint(w, `{"count": 7}`)
			return
		}
		w.Write([]byte(`{"count":`))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // never finishes the body
	}))
	defer srv.Close()
	rec := &recorder{}
	c, err := keeptrusts.New(srv.URL, "tok", keeptrusts.WithObserver(rec), keeptrusts.WithTimeouts(keeptrusts.Timeouts{IdleRead: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Count(ctx, keeptrusts.Window{Since: "1h"}); err == nil {
		t.Fatal("a stalled body read as a count")
	}
	stall.Store(false)
	if n, err := c.Count(ctx, keeptrusts.Window{Since: "1h"}); err != nil || n != 7 {
		t.Fatalf("count %d, %v", n, err)
	}
	want := []string{"count events 0 true", "count events 200 false"}
	if fmt.Sprint(rec.requests) != fmt.Sprint(want) {
		t.Fatalf("observed %q, want %q", rec.requests, want)
	}
}
