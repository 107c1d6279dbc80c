package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
)

// lineWriter collects output and calls full once it holds n lines.
type lineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	n    int
	full func()
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Count(w.buf.Bytes(), []byte("\n")) >= w.n {
		w.full()
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestTailPrintsJSONLines runs `ktpipe tail` against a stream that spreads
// each event's indented JSON over several data: lines and drops the
// connection after every few events (mid-event): stdout is one compact
// JSON object per line, every event once, in order.
func TestTailPrintsJSONLines(t *testing.T) {
	const total, notJSON = 20, 5
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := 0
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(id, "c"))
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 5\n\n")
		for n := start + 1; n <= total && n <= start+3; n++ {
			fmt.Fprintf(w, "id: c%d\nevent: event\n", n)
			data, _ := json.MarshalIndent(map[string]any{"n": n, "text": "two\nlines", "nested": map[string]int{"a": n}}, "", "  ")
			if n == notJSON {
				data = []byte("not json")
			}
			for _, l := range strings.Split(string(data), "\n") {
				fmt.Fprintf(w, "data: %s\n", l)
			}
			fmt.Fprint(w, "\n")
		}
		fmt.Fprintf(w, "id: c%d\ndata: {\"n\":", start+4) // cut mid-event
		w.(http.Flusher).Flush()
		if start+3 >= total {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stdout := &lineWriter{n: total - 1, full: cancel}
	var stderr bytes.Buffer
	c := &control.CLI{
		Env:    envconfig.MapLookuper(map[string]string{"KEEPTRUSTS_BASE_URL": srv.URL, "KEEPTRUSTS_API_TOKEN": "tok"}),
		Stdout: stdout, Stderr: &stderr,
		Dial: func(config.Temporal) (client.Client, error) { return nil, errors.New("no Temporal in unit tests") },
	}
	if code := c.Run(ctx, []string{"tail"}); code != control.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("tail did not print %d lines: %q", total-1, stdout.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	want := 1
	for _, l := range lines {
		var ev struct{ N int }
		if err := json.Unmarshal([]byte(l), &ev); err != nil || !strings.HasPrefix(l, "{") {
			t.Fatalf("line %q is not one JSON object: %v", l, err)
		}
		var compact bytes.Buffer
		json.Compact(&compact, []byte(l))
		if compact.String() != l {
			t.Errorf("line %q is not compact", l)
		}
		if want == notJSON {
			want++
		}
		if ev.N != want {
			t.Fatalf("event %d, want %d (a gap or a repeat): %q", ev.N, want, stdout.String())
		}
		want++
	}
	if want != total+1 {
		t.Fatalf("printed up to event %d of %d", want-1, total)
	}
	if !strings.Contains(stderr.String(), `skipped an event that is not a JSON object (cursor "c5")`) {
		t.Fatalf("stderr %q does not name the skipped event", stderr.String())
	}
}
