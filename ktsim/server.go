package ktsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Faults are injected failures, each a probability per request unless
// said otherwise. The zero value injects nothing.
type Faults struct {
	ErrorRate      float64       // 500 on any /v1 request
	RateLimitRate  float64       // 429 with Retry-After on any /v1 request
	RetryAfter     int           // seconds in Retry-After (default 1)
	DropRate       float64       // a download is cut after half its bytes
	SlowRate       float64       // a response waits Slow first
	Slow           time.Duration //
	ResendRate     float64       // a page starts with events of the page before
	ExportFailRate float64       // an export ends failed
	// ExpireCursorsBefore refuses cursors issued before it with 410
	// cursor_expired, as if they were past their 30 days.
	ExpireCursorsBefore time.Time
	// HangRate: a response sends its headers and the first HangAfter
	// bytes of its body, then stalls until the client gives up, the
	// server closes, or Hang passes (default 2m, so a client without a
	// timeout is stuck that long, not forever); the connection is then
	// cut, the body never finished.
	HangRate float64
	Hang     time.Duration
	// HiddenGateways leaves the last N gateways out of /v1/gateways (a
	// stale list; all of them: an empty one), while their events flow.
	HiddenGateways int
}

// HangAfter is how many body bytes a hanging response sends before it
// stalls: enough that the client has seen the headers and started
// reading.
const HangAfter = 64

// RequestStats count /v1 requests and the faults injected into them.
type RequestStats struct {
	Requests    int64 // /v1 requests received
	Errors      int64 // answered 500 by the ErrorRate fault
	RateLimited int64 // answered 429 by the RateLimitRate fault
	Hung        int64 // stalled mid-body by the HangRate fault
	Slowed      int64 // delayed by the SlowRate fault
	Dropped     int64 // downloads cut by the DropRate fault
}

// Config shapes a simulated Keeptrusts organisation.
type Config struct {
	Seed          uint64
	Token         string        // the bearer token accepted
	HistoryDays   int           // history spans this many days before start
	HistoryEvents int           // events in that history
	LiveRate      float64       // events per second generated after start (0: none)
	LateRate      float64       // fraction of events delivered late
	LateMin       time.Duration // a late event arrives this much after its timestamp, or more
	LateMax       time.Duration
	InvalidRate   float64 // fraction of events that break one validation rule
	AddedField    string  // a field the contract does not name yet, on every event
	ExportQueued  time.Duration
	ExportRunning time.Duration
	ExportTTL     time.Duration
	KeepAlive     time.Duration // SSE keepalive interval (contract: 15 s)
	CursorTTL     time.Duration // a cursor older than this gets 410 (contract: 30 days)
	Webhooks      []Webhook
	Faults        Faults
	// Start is when the history ends (zero: now). Same seed and start give
	// the same history byte for byte.
	Start time.Time
}

// DefaultConfig is a small organisation with a week of history.
func DefaultConfig() Config {
	return Config{
		Seed: 1, Token: "sim-token", HistoryDays: 7, HistoryEvents: 5000,
		LateRate: 0.05, LateMin: 2 * time.Minute, LateMax: 30 * time.Minute,
		InvalidRate: 0.01, ExportQueued: 300 * time.Millisecond,
		ExportRunning: 700 * time.Millisecond, ExportTTL: 24 * time.Hour,
		KeepAlive: 15 * time.Second,
	}
}

// Server is a simulated Keeptrusts API. It is an http.Handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	mu      sync.Mutex
	gen     *generator
	records []*record // ingestion order; records[i].seq == i+1
	exports map[string]*export
	byKey   map[string]*export
	order   []*export
	notify  chan struct{} // closed and replaced on every ingest
	faults  *rand.Rand
	hooks   *webhookSender
	stop    chan struct{}
	stopped sync.Once
	stats   struct{ requests, errors, rateLimited, hung, slowed, dropped atomic.Int64 }
}

// Stats returns the request and fault counts so far.
func (s *Server) Stats() RequestStats {
	return RequestStats{Requests: s.stats.requests.Load(), Errors: s.stats.errors.Load(),
		RateLimited: s.stats.rateLimited.Load(), Hung: s.stats.hung.Load(),
		Slowed: s.stats.slowed.Load(), Dropped: s.stats.dropped.Load()}
}

// New builds a server and its history, ending now.
func New(cfg Config) *Server {
	if cfg.Faults.RetryAfter <= 0 {
		cfg.Faults.RetryAfter = 1
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.ExportTTL <= 0 {
		cfg.ExportTTL = 24 * time.Hour
	}
	if cfg.CursorTTL <= 0 {
		cfg.CursorTTL = 30 * 24 * time.Hour
	}
	s := &Server{
		cfg:     cfg,
		gen:     newGenerator(cfg.Seed, cfg.InvalidRate, cfg.AddedField),
		exports: map[string]*export{},
		byKey:   map[string]*export{},
		notify:  make(chan struct{}),
		faults:  rand.New(rand.NewPCG(cfg.Seed+1, 7)),
		stop:    make(chan struct{}),
	}
	s.hooks = newWebhookSender(cfg.Webhooks, s.stop)
	start := cfg.Start
	if start.IsZero() {
		start = time.Now()
	}
	s.buildHistory(start)
	s.routes()
	if cfg.LiveRate > 0 {
		go s.live()
	}
	return s
}

// SetFaults changes the injected faults from now on.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.RetryAfter <= 0 {
		f.RetryAfter = 1
	}
	s.cfg.Faults = f
}

func (s *Server) faultCfg() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Faults
}

// Close stops live generation and webhook retries.
func (s *Server) Close() { s.stopped.Do(func() { close(s.stop) }) }

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

// Gateways returns the organisation's gateways.
func (s *Server) Gateways() []Gateway { return slices.Clone(s.gen.gateways) }

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

// ---- HTTP ----

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /v1/events", s.api(s.handleEvents))
	s.mux.HandleFunc("GET /v1/events/tail", s.api(s.handleTail))
	s.mux.HandleFunc("POST /v1/exports", s.api(s.handleCreateExport))
	s.mux.HandleFunc("GET /v1/exports", s.api(s.handleListExports))
	s.mux.HandleFunc("GET /v1/exports/{id}", s.api(s.handleGetExport))
	s.mux.HandleFunc("GET /v1/exports/{id}/download", s.api(s.handleDownload))
	s.mux.HandleFunc("GET /v1/gateways", s.api(func(w http.ResponseWriter, r *http.Request) {
		gws := s.Gateways()
		writeJSON(w, http.StatusOK, gws[:len(gws)-min(len(gws), max(0, s.faultCfg().HiddenGateways))])
	}))
	s.mux.HandleFunc("GET /_sim/truth", s.handleTruth)
	s.mux.HandleFunc("POST /_sim/ingest", s.handleIngest)
	s.mux.HandleFunc("GET /_sim/users.csv", s.handleUsers)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.Float64() < p
}

// api wraps a /v1 handler with auth, rate-limit headers and faults.
func (s *Server) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reset := time.Now().Truncate(time.Minute).Add(time.Minute)
		w.Header().Set("X-RateLimit-Limit", "600")
		w.Header().Set("X-RateLimit-Remaining", "599")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		if r.Header.Get("Authorization") != "Bearer "+s.cfg.Token || s.cfg.Token == "" {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or unknown token")
			return
		}
		s.stats.requests.Add(1)
		f := s.faultCfg()
		if s.roll(f.SlowRate) {
			s.stats.slowed.Add(1)
			select {
			case <-time.After(f.Slow):
			case <-r.Context().Done():
				return
			}
		}
		if s.roll(f.RateLimitRate) {
			s.stats.rateLimited.Add(1)
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			w.Header().Set("X-RateLimit-Remaining", "0")
			writeError(w, http.StatusTooManyRequests, "rate_limited", "slow down")
			return
		}
		if s.roll(f.ErrorRate) {
			s.stats.errors.Add(1)
			writeError(w, http.StatusInternalServerError, "internal", "injected failure")
			return
		}
		if s.roll(f.HangRate) {
			s.stats.hung.Add(1)
			hw := &hangWriter{ResponseWriter: w, left: HangAfter, hang: func() { s.hang(r, f.Hang) }}
			h(hw, r)
			hw.Flush() // a body shorter than HangAfter hangs at its end
			hw.hang()
			return
		}
		h(w, r)
	}
}

// hang stalls a response for d (default 2m), until the client goes away
// or the server closes, then cuts the connection so the body is never
// finished.
func (s *Server) hang(r *http.Request, d time.Duration) {
	if d <= 0 {
		d = 2 * time.Minute
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-s.stop:
	}
	panic(http.ErrAbortHandler)
}

// hangWriter passes the first left bytes of a body through, then hangs.
type hangWriter struct {
	http.ResponseWriter
	left int
	hang func()
}

func (w *hangWriter) Write(p []byte) (int, error) {
	if len(p) < w.left {
		w.left -= len(p)
		return w.ResponseWriter.Write(p)
	}
	n, err := w.ResponseWriter.Write(p[:w.left])
	if err != nil {
		return n, err
	}
	w.Flush()
	w.hang() // does not return
	return n, nil
}

func (w *hangWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

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

func (s *Server) handleTail(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "internal", "streaming unsupported")
		return
	}
	now := time.Now()
	q := r.URL.Query()
	decision := q.Get("decision")
	s.mu.Lock()
	pos := int64(len(s.records))
	s.mu.Unlock()
	start := r.Header.Get("Last-Event-ID")
	if start == "" {
		start = q.Get("cursor")
	}
	if start != "" {
		var code string
		if pos, code = decodeCursor(start, now, s.cfg.CursorTTL, s.faultCfg().ExpireCursorsBefore); code != "" {
			writeError(w, http.StatusBadRequest, code, "cursor "+code)
			return
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	keep := time.NewTicker(s.cfg.KeepAlive)
	defer keep.Stop()
	for {
		s.mu.Lock()
		var batch []*record
		if pos < int64(len(s.records)) {
			batch = slices.Clone(s.records[pos:])
		}
		wait := s.notify
		s.mu.Unlock()
		for _, rec := range batch {
			pos = rec.seq
			if decision != "" && rec.decision != decision {
				continue
			}
			fmt.Fprintf(w, "id: %s\nevent: event\ndata: %s\n\n", encodeCursor(rec.seq, time.Now()), rec.json)
		}
		if len(batch) > 0 {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		case <-keep.C:
			fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
		case <-wait:
		}
	}
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

func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 1 || n > 100000 {
		writeError(w, http.StatusBadRequest, "invalid_parameter", "n must be 1..100000")
		return
	}
	late, _ := strconv.ParseFloat(r.URL.Query().Get("late"), 64)
	writeJSON(w, http.StatusOK, map[string]any{"ingested": s.Ingest(n, late)})
}

func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/csv")
	fmt.Fprintln(w, "user,team,department")
	for _, u := range s.gen.users {
		fmt.Fprintf(w, "%s,%s,%s\n", u.Name, u.Team, u.Department)
	}
}
