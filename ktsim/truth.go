package ktsim

import (
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Users returns the synthetic users with their team and department.
func (s *Server) Users() []User { return slices.Clone(s.gen.users) }

// InvalidRecord is a record the loader must quarantine, and the rule it
// breaks.
type InvalidRecord struct {
	ID   string `json:"id,omitempty"`
	Rule string `json:"rule"`
}

// Truth is what exists: the distinct valid event ids and the invalid
// records, among events with since <= timestamp < until (zero: unbounded).
type Truth struct {
	Valid   []string        `json:"valid_ids"`
	Invalid []InvalidRecord `json:"invalid"`
}

// Truth returns the ground truth of everything ingested so far.
func (s *Server) Truth(since, until time.Time) Truth {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := Truth{Valid: []string{}, Invalid: []InvalidRecord{}}
	for _, r := range s.records {
		if (!since.IsZero() && r.ts.Before(since)) || (!until.IsZero() && !r.ts.Before(until)) {
			continue
		}
		if r.invalid == "" {
			t.Valid = append(t.Valid, r.id)
		} else {
			t.Invalid = append(t.Invalid, InvalidRecord{ID: r.id, Rule: r.invalid})
		}
	}
	return t
}

// ValidEvent is a valid event's values, as the simulator generated them,
// for checking aggregates the warehouse computes (independently of the
// loader's decoding).
type ValidEvent struct {
	ID                string
	Timestamp         time.Time // UTC
	GatewayID         string
	User              string
	Provider, Model   string
	Decision          string
	PoliciesTriggered []string
	InputTokens       int64
	OutputTokens      int64
	CostNanos         int64 // USD × 1e9, exact
}

// ValidEvents returns every distinct valid event with since <= timestamp
// < until (zero: unbounded), in ingestion order.
func (s *Server) ValidEvents(since, until time.Time) []ValidEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ValidEvent
	seen := map[string]bool{}
	for _, r := range s.records {
		if r.invalid != "" || seen[r.id] || (!since.IsZero() && r.ts.Before(since)) || (!until.IsZero() && !r.ts.Before(until)) {
			continue
		}
		seen[r.id] = true
		out = append(out, ValidEvent{ID: r.id, Timestamp: r.ts.UTC(), GatewayID: r.gateway, User: r.user, Provider: r.provider, Model: r.model,
			Decision: r.decision, PoliciesTriggered: slices.Clone(r.triggered), InputTokens: r.inTok, OutputTokens: r.outTok, CostNanos: r.costNanos})
	}
	return out
}

func (s *Server) handleTruth(w http.ResponseWriter, r *http.Request) {
	var since, until time.Time
	var err error
	if v := r.URL.Query().Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_parameter", "since: want RFC 3339")
			return
		}
	}
	if v := r.URL.Query().Get("until"); v != "" {
		if until, err = time.Parse(time.RFC3339Nano, v); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_parameter", "until: want RFC 3339")
			return
		}
	}
	writeJSON(w, http.StatusOK, s.Truth(since, until))
}

func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/csv")
	fmt.Fprintln(w, "user,team,department")
	for _, u := range s.gen.users {
		fmt.Fprintf(w, "%s,%s,%s\n", u.Name, u.Team, u.Department)
	}
}
