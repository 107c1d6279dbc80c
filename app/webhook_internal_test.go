package app

import (
	"bytes"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log destination the server's goroutines and the test
// share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// shutdownWebhooks waits for a delivery as long as the server lets one
// take (its WriteTimeout), then gives up saying so and closes the
// connection, so a stop is never stalled by a delivery.
func TestShutdownWebhooksDrainsForTheWriteTimeout(t *testing.T) {
	for _, tt := range []struct {
		name       string
		takes      time.Duration // how long the delivery takes; 0: until its connection closes
		wantGiveUp bool
	}{
		{"within the drain", 300 * time.Millisecond, false},
		{"past the drain", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logged lockedBuffer
			entered := make(chan struct{})
			srv := &http.Server{WriteTimeout: time.Second, ErrorLog: log.New(&logged, "", 0),
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					close(entered)
					if tt.takes > 0 {
						time.Sleep(tt.takes)
						return
					}
					<-r.Context().Done() // when the connection closes
				})}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			errs := make(chan error, 1)
			go func() {
				resp, err := http.Get("http://" + ln.Addr().String())
				if err == nil {
					resp.Body.Close()
				}
				errs <- err
			}()
			<-entered
			start := time.Now()
			shutdownWebhooks(srv)
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("shutdown took %s, want at most the WriteTimeout (1 s) and a second", took)
			}
			gaveUp := strings.Contains(logged.String(), "deliveries still in flight after 2s")
			if gaveUp != tt.wantGiveUp {
				t.Fatalf("logged %q; want a give-up line: %v", logged.String(), tt.wantGiveUp)
			}
			select {
			case err := <-errs:
				if (err != nil) != tt.wantGiveUp {
					t.Fatalf("the delivery's answer: error %v; want its connection closed: %v", err, tt.wantGiveUp)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the delivery's connection was still open 2 s after shutdown returned")
			}
		})
	}
}
