package ktsim

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

func (s *Server) buildHistory(now time.Time) {
	if s.cfg.HistoryEvents <= 0 || s.cfg.HistoryDays <= 0 {
		return
	}
	span := time.Duration(s.cfg.HistoryDays) * 24 * time.Hour
	start := now.Add(-span)
	step := span / time.Duration(s.cfg.HistoryEvents)
	recs := make([]*record, 0, s.cfg.HistoryEvents)
	for i := 0; i < s.cfg.HistoryEvents; i++ {
		ts := start.Add(time.Duration(i)*step + time.Duration(s.gen.rng.Int64N(int64(step)+1)))
		r := s.gen.event(ts)
		r.ingested = ts.Add(s.delay())
		if r.ingested.After(now) {
			r.ingested = now
		}
		recs = append(recs, r)
	}
	slices.SortStableFunc(recs, func(a, b *record) int { return a.ingested.Compare(b.ingested) })
	s.append(recs)
}

// delay is how long after its timestamp an event reaches Keeptrusts.
func (s *Server) delay() time.Duration {
	if s.gen.rng.Float64() < s.cfg.LateRate && s.cfg.LateMax > 0 {
		return s.cfg.LateMin + time.Duration(s.gen.rng.Int64N(int64(s.cfg.LateMax-s.cfg.LateMin)+1))
	}
	return time.Duration(s.gen.rng.Int64N(int64(2 * time.Second)))
}

// append ingests records (caller holds mu or is the constructor).
func (s *Server) append(recs []*record) {
	for _, r := range recs {
		r.seq = int64(len(s.records)) + 1
		s.records = append(s.records, r)
	}
	close(s.notify)
	s.notify = make(chan struct{})
}

// Ingest makes n new events arrive now; a lateFraction of them carry
// timestamps minutes in the past (late events), the rest now. It returns
// the ids of the new events.
func (s *Server) Ingest(n int, lateFraction float64) []string {
	return s.ingest(n, lateFraction, false)
}

// IngestInvalid makes n new events arrive now that each break one
// validation rule (the loader must quarantine them): schema violations
// on demand, whatever the configured InvalidRate.
func (s *Server) IngestInvalid(n int) []string { return s.ingest(n, 0, true) }

func (s *Server) ingest(n int, lateFraction float64, invalid bool) []string {
	s.mu.Lock()
	rate := s.gen.invalid
	if invalid {
		s.gen.invalid = 1
	}
	now := time.Now()
	recs := make([]*record, n)
	ids := make([]string, n)
	for i := range recs {
		ts := now.Add(-time.Duration(s.gen.rng.Int64N(int64(2 * time.Second))))
		if s.gen.rng.Float64() < lateFraction {
			late := s.cfg.LateMin + time.Duration(s.gen.rng.Int64N(int64(s.cfg.LateMax-s.cfg.LateMin)+1))
			ts = now.Add(-late)
		}
		recs[i] = s.gen.event(ts)
		recs[i].ingested = now
		ids[i] = recs[i].id
	}
	s.gen.invalid = rate
	s.append(recs)
	s.mu.Unlock()
	s.hooks.deliver(recs)
	return ids
}

func (s *Server) live() {
	const tick = 250 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	carry := 0.0
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			carry += s.cfg.LiveRate * tick.Seconds()
			if n := int(carry); n > 0 {
				carry -= float64(n)
				s.Ingest(n, s.cfg.LateRate)
			}
		}
	}
}

func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 1 || n > 100000 {
		writeError(w, http.StatusBadRequest, "invalid_parameter", "n must be 1..100000")
		return
	}
	late, _ := strconv.ParseFloat(r.URL.Query().Get("late"), 64)
	writeJSON(w, http.StatusOK, map[string]any{"ingested": s.Ingest(n, late)})
}
