package ktsim

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
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

// Gateways returns the organisation's gateways.
func (s *Server) Gateways() []Gateway { return slices.Clone(s.gen.gateways) }

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
