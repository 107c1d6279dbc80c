package ktsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
