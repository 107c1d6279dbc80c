package ktsim

import (
	"fmt"
	"net/http"
	"slices"
	"time"
)

// handleTail serves GET /v1/events/tail: events after Last-Event-ID (or
// ?cursor), then new ones as they arrive, as server-sent events.
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
