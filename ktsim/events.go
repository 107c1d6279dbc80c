package ktsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parseSince reads an RFC 3339 time or a relative duration (5m, 24h, 30d).
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if len(v) >= 2 {
		n, err := strconv.Atoi(v[:len(v)-1])
		if err == nil && n >= 0 {
			switch v[len(v)-1] {
			case 'm':
				return now.Add(-time.Duration(n) * time.Minute), nil
			case 'h':
				return now.Add(-time.Duration(n) * time.Hour), nil
			case 'd':
				return now.Add(-time.Duration(n) * 24 * time.Hour), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("since %q: want RFC 3339 or <n>m|h|d", v)
}

// window reads since/until/decision shared by page, count and group_by.
type window struct {
	since, until time.Time
	decision     string
}

func (wd window) match(r *record) bool {
	return !r.ts.Before(wd.since) && (wd.until.IsZero() || r.ts.Before(wd.until)) &&
		(wd.decision == "" || r.decision == wd.decision)
}

func readWindow(q map[string][]string, now time.Time, defSince string) (window, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var wd window
	since := get("since")
	if since == "" {
		since = defSince
	}
	var err error
	if wd.since, err = parseSince(since, now); err != nil {
		return wd, err
	}
	if u := get("until"); u != "" {
		if wd.until, err = time.Parse(time.RFC3339Nano, u); err != nil {
			return wd, fmt.Errorf("until %q: want RFC 3339", u)
		}
	}
	switch wd.decision = get("decision"); wd.decision {
	case "", "allow", "block", "redact", "escalate":
	default:
		return wd, fmt.Errorf("decision %q: want allow, block, redact or escalate", wd.decision)
	}
	return wd, nil
}

func encodeCursor(seq int64, issued time.Time) string {
	return "c1." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d.%d", seq, issued.Unix())))
}

// decodeCursor returns the seq after which to continue; code is the
// contract's error code when the cursor is refused.
func decodeCursor(c string, now time.Time, ttl time.Duration, expireBefore time.Time) (seq int64, code string) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(c, "c1."))
	if !strings.HasPrefix(c, "c1.") || err != nil {
		return 0, "invalid_cursor"
	}
	a, b, ok := strings.Cut(string(raw), ".")
	seq, err1 := strconv.ParseInt(a, 10, 64)
	issued, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || seq < 0 {
		return 0, "invalid_cursor"
	}
	if now.Sub(time.Unix(issued, 0)) > ttl || issued < expireBefore.Unix() {
		return 0, "cursor_expired"
	}
	return seq, ""
}

// handleEvents serves GET /v1/events: a page by cursor, count=true, or
// group_by.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := time.Now()
	wd, err := readWindow(q, now, "24h")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	if q.Get("count") == "true" {
		if wd.until.IsZero() {
			wd.until = now
		}
		s.mu.Lock()
		n := 0
		for _, rec := range s.records {
			if wd.match(rec) {
				n++
			}
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int{"count": n})
		return
	}
	if g := q.Get("group_by"); g != "" {
		s.handleGroupBy(w, wd, now, strings.Split(g, ","))
		return
	}
	limit := 100
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 10000 {
			writeError(w, http.StatusBadRequest, "invalid_parameter", "limit must be 1..10000")
			return
		}
	}
	after := int64(0)
	byCursor := q.Get("cursor") != ""
	if byCursor {
		var code string
		if after, code = decodeCursor(q.Get("cursor"), now, s.cfg.CursorTTL, s.faultCfg().ExpireCursorsBefore); code != "" {
			status := http.StatusBadRequest
			if code == "cursor_expired" {
				status = http.StatusGone
			}
			writeError(w, status, code, "cursor "+code)
			return
		}
		wd.since = time.Time{} // the cursor wins over since
	}
	resend := byCursor && s.roll(s.faultCfg().ResendRate)
	s.mu.Lock()
	if after > int64(len(s.records)) {
		after = int64(len(s.records))
	}
	page := make([]json.RawMessage, 0, min(limit, 1024))
	if resend {
		// A gateway retry or a page boundary serves some events again.
		for i := max(after-3, 0); i < after; i++ {
			if rec := s.records[i]; wd.match(rec) {
				page = append(page, rec.json)
			}
		}
	}
	last := after
	for i := after; i < int64(len(s.records)) && len(page) < limit; i++ {
		rec := s.records[i]
		last = rec.seq
		if wd.match(rec) {
			page = append(page, rec.json)
		}
	}
	hasMore := last < int64(len(s.records))
	s.mu.Unlock()
	w.Header().Set("X-Next-Cursor", encodeCursor(last, now))
	w.Header().Set("X-Has-More", strconv.FormatBool(hasMore))
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleGroupBy(w http.ResponseWriter, wd window, now time.Time, fields []string) {
	for _, f := range fields {
		switch f {
		case "provider", "model", "decision", "gateway_id", "user", "date", "hour":
		default:
			writeError(w, http.StatusBadRequest, "invalid_parameter", "group_by field "+f+" unknown")
			return
		}
	}
	if wd.until.IsZero() {
		wd.until = now
	}
	type agg struct {
		key                        []string
		requests, in, out, blocked int64
		cost                       int64
	}
	groups := map[string]*agg{}
	var order []string
	s.mu.Lock()
	for _, r := range s.records {
		if !wd.match(r) || r.invalid != "" {
			continue
		}
		key := make([]string, len(fields))
		for i, f := range fields {
			switch f {
			case "provider":
				key[i] = r.provider
			case "model":
				key[i] = r.model
			case "decision":
				key[i] = r.decision
			case "gateway_id":
				key[i] = r.gateway
			case "user":
				key[i] = r.user
			case "date":
				key[i] = r.ts.UTC().Format(time.DateOnly)
			case "hour":
				key[i] = strconv.Itoa(r.ts.UTC().Hour())
			}
		}
		k := strings.Join(key, "\x00")
		a := groups[k]
		if a == nil {
			a = &agg{key: key}
			groups[k] = a
			order = append(order, k)
		}
		a.requests++
		a.in += r.inTok
		a.out += r.outTok
		a.cost += r.costNanos
		if r.decision == "block" {
			a.blocked++
		}
	}
	s.mu.Unlock()
	rows := make([]map[string]any, 0, len(order))
	for _, k := range order {
		a := groups[k]
		row := map[string]any{"requests": a.requests, "input_tokens": a.in, "output_tokens": a.out, "cost": formatNanos(a.cost), "blocked": a.blocked}
		for i, f := range fields {
			if f == "hour" {
				h, _ := strconv.Atoi(a.key[i])
				row[f] = h
			} else {
				row[f] = a.key[i]
			}
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, rows)
}
