package ktsim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestHistoryIsInIngestionOrderWithLateEvents(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HistoryEvents, cfg.LateRate = 2000, 0.1
	s := New(cfg)
	defer s.Close()
	late, outOfOrder := 0, 0
	for i, r := range s.records {
		if r.seq != int64(i+1) {
			t.Fatalf("seq %d at %d", r.seq, i)
		}
		if i > 0 && r.ingested.Before(s.records[i-1].ingested) {
			t.Fatal("records not in ingestion order")
		}
		if r.ingested.Sub(r.ts) >= cfg.LateMin {
			late++
		}
		if i > 0 && r.ts.Before(s.records[i-1].ts) {
			outOfOrder++
		}
	}
	if late < 100 || outOfOrder == 0 {
		t.Fatalf("late %d, out of timestamp order %d: want both", late, outOfOrder)
	}
}

func TestSameSeedSameData(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Start = time.Now()
	a, b := New(cfg), New(cfg)
	defer a.Close()
	defer b.Close()
	if len(a.records) != len(b.records) || a.records[10].id != b.records[10].id || string(a.records[99].json) != string(b.records[99].json) {
		t.Fatal("same seed produced different events")
	}
}

func TestExpiredCursorIs410(t *testing.T) {
	s := New(DefaultConfig())
	defer s.Close()
	old := encodeCursor(5, time.Now().Add(-31*24*time.Hour))
	req := httptest.NewRequest(http.MethodGet, "/v1/events?cursor="+old, nil)
	req.Header.Set("Authorization", "Bearer sim-token")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var body struct{ Error struct{ Code string } }
	json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusGone || body.Error.Code != "cursor_expired" {
		t.Fatalf("status %d code %q", rec.Code, body.Error.Code)
	}
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if rec.Header().Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
}

func TestEveryInvalidRuleOccurs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InvalidRate = 0.2
	s := New(cfg)
	defer s.Close()
	rules := map[string]int{}
	for _, r := range s.Truth(time.Time{}, time.Time{}).Invalid {
		rules[r.Rule]++
	}
	for _, rule := range InvalidRules {
		if rules[rule] == 0 {
			t.Errorf("rule %s never broken", rule)
		}
	}
}

func TestHangStallsMidBodyThenCuts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Faults = Faults{HangRate: 1, Hang: 300 * time.Millisecond}
	s := New(cfg)
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/events?since=30d&limit=100", nil)
	req.Header.Set("Authorization", "Bearer sim-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: a hang sends its headers first", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the body ended cleanly after %d bytes: want it cut", len(body))
	}
	if len(body) != HangAfter {
		t.Fatalf("read %d bytes before the cut, want %d", len(body), HangAfter)
	}
	if st := s.Stats(); st.Hung != 1 || st.Requests != 1 {
		t.Fatalf("stats %+v: want one request, hung", st)
	}

	// A body shorter than HangAfter hangs too, and a client that gives up
	// releases it.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events?since=30d&count=true", nil)
	req.Header.Set("Authorization", "Bearer sim-token")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatal("a short body ended cleanly: want it to hang")
		}
	}
}

func TestWebhookStatsAndBackoffCap(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	fail := 4
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) <= fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()
	cfg := DefaultConfig()
	cfg.HistoryEvents = 0
	cfg.Webhooks = []Webhook{{URL: recv.URL, Secret: "s", Subscription: "all", MaxAttempts: 10, MaxBackoff: 100 * time.Millisecond}}
	s := New(cfg)
	defer s.Close()
	s.Ingest(3, 0)
	waitStats := func(done func(WebhookStats) bool) WebhookStats {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if st := s.WebhookStats(); done(st) {
				return st
			}
		}
		t.Fatalf("webhook stats %+v never settled", s.WebhookStats())
		return WebhookStats{}
	}
	st := waitStats(func(st WebhookStats) bool { return st.InFlight == 0 })
	if st != (WebhookStats{Deliveries: 1, Delivered: 1, Retries: 4}) {
		t.Fatalf("stats %+v: want one delivery, delivered after 4 retries", st)
	}
	// Uncapped, the 4th wait would be 800 ms; capped it is 100 ms (slack
	// for a loaded machine).
	mu.Lock()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap > 600*time.Millisecond {
			t.Errorf("wait %d was %s: MaxBackoff is 100ms", i, gap)
		}
	}
	fail = 100 // every later attempt fails
	mu.Unlock()

	cfg.Webhooks[0].MaxAttempts = 3
	s2 := New(cfg)
	defer s2.Close()
	s2.Ingest(1, 0)
	s = s2
	st = waitStats(func(st WebhookStats) bool { return st.InFlight == 0 })
	if st != (WebhookStats{Deliveries: 1, GaveUp: 1, Retries: 2}) {
		t.Fatalf("stats %+v: want one delivery given up after 3 attempts", st)
	}
}

func TestIngestInvalidMakesOnlyInvalidEvents(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HistoryEvents = 0
	cfg.InvalidRate = 0
	s := New(cfg)
	defer s.Close()
	ids := s.IngestInvalid(5)
	s.Ingest(5, 0)
	truth := s.Truth(time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if len(truth.Invalid) != 5 || len(truth.Valid) != 5 {
		t.Fatalf("%d invalid, %d valid; want 5 and 5", len(truth.Invalid), len(truth.Valid))
	}
	for i, r := range truth.Invalid {
		if r.ID != ids[i] && r.Rule == "" {
			t.Errorf("invalid record %d: %+v", i, r)
		}
	}
}
