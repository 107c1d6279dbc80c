package keeptrusts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
)

const token = "contract-token"

func startSim(t *testing.T, mutate func(*ktsim.Config)) (*ktsim.Server, *keeptrusts.Client) {
	t.Helper()
	cfg := ktsim.DefaultConfig()
	cfg.Token = token
	cfg.HistoryEvents = 800
	cfg.HistoryDays = 2
	cfg.InvalidRate = 0.05
	cfg.ExportQueued = 20 * time.Millisecond
	cfg.ExportRunning = 30 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	sim := ktsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	c, err := keeptrusts.New(srv.URL, token, keeptrusts.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func ids(t *testing.T, body []byte) []string {
	t.Helper()
	var evs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		t.Fatalf("page is not a JSON array of events: %v", err)
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// pageAll follows the cursor from start until X-Has-More is false.
func pageAll(t *testing.T, c *keeptrusts.Client, pq keeptrusts.PageQuery) (seen map[string]int, served int, cursor string) {
	t.Helper()
	seen = map[string]int{}
	for {
		p, err := c.ListEvents(context.Background(), pq)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids(t, p.Body) {
			seen[id]++
			served++
		}
		pq.Cursor = p.NextCursor
		if !p.HasMore {
			return seen, served, p.NextCursor
		}
	}
}

func truthIDs(tr ktsim.Truth) map[string]bool {
	m := map[string]bool{}
	for _, id := range tr.Valid {
		m[id] = true
	}
	for _, r := range tr.Invalid {
		if r.ID != "" {
			m[r.ID] = true
		}
	}
	return m
}

func TestPagesCoverEverythingAndCursorCatchesLateEvents(t *testing.T) {
	sim, c := startSim(t, nil)
	seen, _, cursor := pageAll(t, c, keeptrusts.PageQuery{Window: keeptrusts.Window{Since: "30d"}, Limit: 97})
	want := truthIDs(sim.Truth(time.Time{}, time.Time{}))
	for id := range want {
		if seen[id] == 0 {
			t.Fatalf("event %s never served", id)
		}
	}
	// Late events: timestamps minutes in the past, ingested now. Paging
	// by max timestamp would skip them; the cursor must not.
	late := sim.Ingest(50, 1.0)
	p, err := c.ListEvents(context.Background(), keeptrusts.PageQuery{Cursor: cursor, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(t, p.Body)
	if len(got) != 50 || got[0] != late[0] || p.HasMore {
		t.Fatalf("after cursor: %d events (has_more %v), want the 50 late ones", len(got), p.HasMore)
	}
	// An empty page still moves the cursor on and stays resumable.
	p2, err := c.ListEvents(context.Background(), keeptrusts.PageQuery{Cursor: p.NextCursor})
	if err != nil || len(ids(t, p2.Body)) != 0 || p2.NextCursor == "" {
		t.Fatalf("empty page: %v %q", err, p2.NextCursor)
	}
}

func TestResentEventsKeepIdentity(t *testing.T) {
	sim, c := startSim(t, func(cfg *ktsim.Config) { cfg.Faults.ResendRate = 1 })
	seen, served, _ := pageAll(t, c, keeptrusts.PageQuery{Window: keeptrusts.Window{Since: "30d"}, Limit: 50})
	want := truthIDs(sim.Truth(time.Time{}, time.Time{}))
	if len(seen) != len(want) {
		t.Fatalf("distinct ids %d, want %d", len(seen), len(want))
	}
	if served <= len(want) {
		t.Fatalf("resend fault served %d for %d events: no duplicates were sent", served, len(want))
	}
}

func TestCountAndGroupBy(t *testing.T) {
	sim, c := startSim(t, nil)
	until := time.Now().Add(-time.Hour).UTC().Truncate(time.Hour)
	since := until.Add(-12 * time.Hour)
	w := keeptrusts.Window{Since: since.Format(time.RFC3339), Until: until}
	n, err := c.Count(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	tr := sim.Truth(since, until)
	if n != int64(len(tr.Valid)+len(tr.Invalid)) || n == 0 {
		t.Fatalf("count %d, truth %d valid + %d invalid", n, len(tr.Valid), len(tr.Invalid))
	}
	rows, err := c.GroupBy(context.Background(), w, "decision", "hour")
	if err != nil {
		t.Fatal(err)
	}
	var requests float64
	for _, r := range rows {
		requests += r["requests"].(float64)
		if _, ok := r["cost"].(string); !ok {
			t.Fatalf("cost must be a decimal string: %v", r)
		}
	}
	if requests == 0 || int64(requests) > n {
		t.Fatalf("group_by requests %v vs count %d", requests, n)
	}
	if _, err := c.GroupBy(context.Background(), w, "nope"); !isStatus(err, 400) {
		t.Fatalf("unknown group field: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var ae *keeptrusts.APIError
	return errors.As(err, &ae) && ae.Status == status
}

func TestErrorsAndRetryability(t *testing.T) {
	t.Run("429 carries Retry-After and is retryable", func(t *testing.T) {
		_, c := startSim(t, func(cfg *ktsim.Config) { cfg.Faults.RateLimitRate = 1; cfg.Faults.RetryAfter = 3 })
		_, err := c.Gateways(context.Background())
		if !isStatus(err, 429) || !keeptrusts.Retryable(err) || keeptrusts.RetryAfter(err) != 3*time.Second {
			t.Fatalf("err %v retry-after %v", err, keeptrusts.RetryAfter(err))
		}
	})
	t.Run("500 is retryable", func(t *testing.T) {
		_, c := startSim(t, func(cfg *ktsim.Config) { cfg.Faults.ErrorRate = 1 })
		_, err := c.Count(context.Background(), keeptrusts.Window{})
		if !isStatus(err, 500) || !keeptrusts.Retryable(err) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("slow response times out, retryable", func(t *testing.T) {
		sim := ktsim.New(func() ktsim.Config {
			cfg := ktsim.DefaultConfig()
			cfg.Token, cfg.HistoryEvents = token, 10
			cfg.Faults.SlowRate, cfg.Faults.Slow = 1, time.Second
			return cfg
		}())
		srv := httptest.NewServer(sim)
		defer srv.Close()
		c, _ := keeptrusts.New(srv.URL, token, keeptrusts.WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
		_, err := c.Gateways(context.Background())
		if err == nil || !keeptrusts.Retryable(err) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("bad token is 401, not retryable, and never echoed", func(t *testing.T) {
		sim, _ := startSim(t, nil)
		srv := httptest.NewServer(sim)
		defer srv.Close()
		const secret = "s3cret-token-value"
		c, _ := keeptrusts.New(srv.URL, secret)
		_, err := c.Gateways(context.Background())
		if !isStatus(err, 401) || keeptrusts.Retryable(err) || strings.Contains(err.Error(), secret) {
			t.Fatalf("err %v", err)
		}
		// The token is a plain string given once; the client keeps it
		// where printing the client does not reach it.
		if s := fmt.Sprintf("%v %+v %#v %+v", c, c, *c, []any{*c}); strings.Contains(s, secret) {
			t.Fatalf("the client prints its token: %s", s)
		}
	})
	t.Run("malformed cursor is 400", func(t *testing.T) {
		_, c := startSim(t, nil)
		_, err := c.ListEvents(context.Background(), keeptrusts.PageQuery{Cursor: "garbage"})
		if !isStatus(err, 400) || keeptrusts.Retryable(err) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("bad base URL names itself", func(t *testing.T) {
		if _, err := keeptrusts.New("not a url", token); err == nil || !strings.Contains(err.Error(), "base URL") {
			t.Fatalf("err %v", err)
		}
	})
}

func waitExport(t *testing.T, c *keeptrusts.Client, id string) keeptrusts.Export {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		e, err := c.GetExport(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if e.Terminal() {
			return e
		}
	}
	t.Fatalf("export %s did not finish", id)
	return keeptrusts.Export{}
}

func TestExportLifecycleIdempotencyAndResumableDownload(t *testing.T) {
	sim, c := startSim(t, func(cfg *ktsim.Config) { cfg.Faults.DropRate = 0.5 })
	ctx := context.Background()
	req := keeptrusts.ExportRequest{Format: "ndjson", Compression: "gzip", Since: "30d"}
	exp, replayed, err := c.CreateExport(ctx, req, "key-1")
	if err != nil || replayed || exp.Status != keeptrusts.StatusQueued {
		t.Fatalf("create: %+v replayed=%v err=%v", exp, replayed, err)
	}
	again, replayed, err := c.CreateExport(ctx, req, "key-1")
	if err != nil || !replayed || again.ID != exp.ID {
		t.Fatalf("replayed create made %s (replayed=%v), want %s: %v", again.ID, replayed, exp.ID, err)
	}
	if _, err := c.GetExport(ctx, "exp_missing"); !isStatus(err, 404) {
		t.Fatalf("missing export: %v", err)
	}
	f, _ := os.Create(filepath.Join(t.TempDir(), "export.ndjson.gz"))
	defer f.Close()
	if err := c.Download(ctx, exp, f, keeptrusts.DownloadOptions{}); !isStatus(err, 409) {
		t.Fatalf("download before completion: %v, want 409 export_not_ready", err)
	}
	done := waitExport(t, c, exp.ID)
	if done.Status != keeptrusts.StatusCompleted || done.RowCount == nil || *done.RowCount == 0 || done.SHA256 == nil {
		t.Fatalf("export %+v", done)
	}
	var maxSeen int64
	if err := c.Download(ctx, done, f, keeptrusts.DownloadOptions{Progress: func(n int64) { maxSeen = n }}); err != nil {
		t.Fatalf("download with dropped connections: %v", err)
	}
	st, _ := f.Stat()
	if st.Size() != *done.SizeBytes || maxSeen != st.Size() {
		t.Fatalf("file %d bytes, progress %d, export %d", st.Size(), maxSeen, *done.SizeBytes)
	}
	// A second call on a complete file verifies and returns at once.
	if err := c.Download(ctx, done, f, keeptrusts.DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListExports(ctx, keeptrusts.StatusCompleted, 10)
	if err != nil || len(list) != 1 || list[0].ID != exp.ID {
		t.Fatalf("list: %v %v", list, err)
	}
	_ = sim
}

func TestDownloadRejectsCorruptPartialFile(t *testing.T) {
	_, c := startSim(t, nil)
	ctx := context.Background()
	exp, _, err := c.CreateExport(ctx, keeptrusts.ExportRequest{Format: "csv", Since: "30d"}, "")
	if err != nil {
		t.Fatal(err)
	}
	done := waitExport(t, c, exp.ID)
	f, _ := os.Create(filepath.Join(t.TempDir(), "export.csv"))
	defer f.Close()
	f.WriteString("not what the server has")
	err = c.Download(ctx, done, f, keeptrusts.DownloadOptions{})
	var ce *keeptrusts.ChecksumError
	if !errors.As(err, &ce) || !keeptrusts.Retryable(err) {
		t.Fatalf("err %v, want a ChecksumError", err)
	}
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Fatalf("corrupt file kept (%d bytes)", st.Size())
	}
	if err := c.Download(ctx, done, f, keeptrusts.DownloadOptions{}); err != nil {
		t.Fatalf("fresh download after discard: %v", err)
	}
}

func TestFailedExport(t *testing.T) {
	_, c := startSim(t, func(cfg *ktsim.Config) { cfg.Faults.ExportFailRate = 1 })
	exp, _, err := c.CreateExport(context.Background(), keeptrusts.ExportRequest{Format: "json"}, "k")
	if err != nil {
		t.Fatal(err)
	}
	done := waitExport(t, c, exp.ID)
	if done.Status != keeptrusts.StatusFailed || done.Error == nil {
		t.Fatalf("export %+v", done)
	}
	f, _ := os.Create(filepath.Join(t.TempDir(), "x"))
	defer f.Close()
	err = c.Download(context.Background(), done, f, keeptrusts.DownloadOptions{})
	if !isStatus(err, 409) || keeptrusts.Retryable(err) {
		t.Fatalf("download of failed export: %v", err)
	}
	if _, _, err := c.CreateExport(context.Background(), keeptrusts.ExportRequest{Format: "xml"}, ""); !isStatus(err, 400) {
		t.Fatalf("bad format: %v", err)
	}
}

func TestTailResumesWithLastEventID(t *testing.T) {
	sim, c := startSim(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	var last string
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		for {
			select {
			case <-ready:
				return
			case <-time.After(20 * time.Millisecond):
				sim.Ingest(1, 0)
			}
		}
	}()
	err := c.Tail(ctx, keeptrusts.TailOptions{}, func(m keeptrusts.TailMessage) error {
		got = append(got, ids(t, append(append([]byte("["), m.Data...), ']'))[0])
		last = m.Cursor
		if len(got) == 3 {
			once.Do(func() { close(ready) })
			return io.EOF // stop: like a client going away
		}
		return nil
	})
	if !errors.Is(err, io.EOF) || len(got) != 3 || last == "" {
		t.Fatalf("tail: %v, %d events", err, len(got))
	}
	more := sim.Ingest(5, 0)
	var resumed []string
	err = c.Tail(ctx, keeptrusts.TailOptions{Cursor: last}, func(m keeptrusts.TailMessage) error {
		resumed = append(resumed, ids(t, append(append([]byte("["), m.Data...), ']'))[0])
		if resumed[len(resumed)-1] == more[4] {
			return io.EOF
		}
		return nil
	})
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	// Whatever arrived between the two tails comes first, then the five.
	if n := len(resumed); n < 5 || strings.Join(resumed[n-5:], ",") != strings.Join(more, ",") {
		t.Fatalf("resumed %v, want to end with %v", resumed, more)
	}
}

func TestWebhookDeliveriesVerifyAndRetry(t *testing.T) {
	const secret = "whsec-test"
	var mu sync.Mutex
	attempts := map[string]int{}
	delivered := make(chan int, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifySignature(secret, r.Header.Get("Keeptrusts-Signature"), body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		id := r.Header.Get("Keeptrusts-Delivery")
		mu.Lock()
		attempts[id]++
		n := attempts[id]
		mu.Unlock()
		if n == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable) // first attempt fails
			return
		}
		var d struct{ Events []json.RawMessage }
		json.Unmarshal(body, &d)
		delivered <- len(d.Events)
	}))
	defer recv.Close()
	sim, _ := startSim(t, func(cfg *ktsim.Config) {
		cfg.Webhooks = []ktsim.Webhook{{URL: recv.URL, Secret: secret, Subscription: "all"}}
	})
	sim.Ingest(4, 0)
	select {
	case n := <-delivered:
		if n != 4 {
			t.Fatalf("delivery carried %d events, want 4", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery after a retry")
	}
	body := []byte(`{"id":"x"}`)
	sig := ktsim.Sign(secret, time.Now(), body)
	if err := verifySignature(secret, sig, []byte(`{"id":"y"}`), time.Now()); !errors.Is(err, keeptrusts.ErrBadSignature) {
		t.Fatal("tampered body verified")
	}
	if err := verifySignature(secret, sig, body, time.Now().Add(10*time.Minute)); !errors.Is(err, keeptrusts.ErrBadSignature) {
		t.Fatal("stale signature verified")
	}
	if err := verifySignature("other", sig, body, time.Now()); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("wrong secret: %v", err)
	}
}

// verifySignature checks a Keeptrusts-Signature header over the raw body
// as the webhook receiver does: ParseSignature, then Verify.
func verifySignature(secret string, header string, body []byte, now time.Time) error {
	s, err := keeptrusts.ParseSignature(header, now)
	if err != nil {
		return err
	}
	return s.Verify(secret, body)
}
