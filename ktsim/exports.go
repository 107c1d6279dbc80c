package ktsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Export is the contract's Export object.
type Export struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	Format      string     `json:"format"`
	Compression string     `json:"compression"`
	Status      string     `json:"status"`
	Since       time.Time  `json:"since"`
	Until       time.Time  `json:"until"`
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RowCount    *int64     `json:"row_count"`
	SizeBytes   *int64     `json:"size_bytes"`
	SHA256      *string    `json:"sha256"`
	Error       *string    `json:"error"`
}

type export struct {
	Export
	key     string
	keyTime time.Time
	file    []byte
}

type exportRequest struct {
	Type        string `json:"type"`
	Format      string `json:"format"`
	Compression string `json:"compression"`
	Since       string `json:"since"`
	Until       string `json:"until"`
	Description string `json:"description"`
}

func (s *Server) handleCreateExport(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var req exportRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_body", "body: "+err.Error())
		return
	}
	if req.Type != "events" {
		writeError(w, http.StatusBadRequest, "invalid_parameter", "type must be events")
		return
	}
	switch req.Format {
	case "json", "ndjson", "csv":
	default:
		writeError(w, http.StatusBadRequest, "invalid_parameter", "format must be json, ndjson or csv")
		return
	}
	switch req.Compression {
	case "":
		req.Compression = "none"
	case "none", "gzip":
	default:
		writeError(w, http.StatusBadRequest, "invalid_parameter", "compression must be none or gzip")
		return
	}
	if req.Since == "" {
		req.Since = "30d"
	}
	since, err := parseSince(req.Since, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	until := now
	if req.Until != "" {
		if until, err = time.Parse(time.RFC3339Nano, req.Until); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_parameter", "until: want RFC 3339")
			return
		}
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		writeError(w, http.StatusBadRequest, "invalid_parameter", "Idempotency-Key longer than 255")
		return
	}
	s.mu.Lock()
	if e, ok := s.byKey[key]; ok && key != "" && now.Sub(e.keyTime) < 24*time.Hour {
		out := e.Export
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
		return
	}
	e := &export{Export: Export{
		ID: "exp_" + s.gen.uuid()[:18], Type: "events", Format: req.Format, Compression: req.Compression,
		Status: "queued", Since: since.UTC(), Until: until.UTC(), Description: req.Description, CreatedAt: now.UTC(),
	}, key: key, keyTime: now}
	e.ID = strings.ReplaceAll(e.ID, "-", "")
	s.exports[e.ID] = e
	s.order = append(s.order, e)
	if key != "" {
		s.byKey[key] = e
	}
	out := e.Export
	s.mu.Unlock()
	time.AfterFunc(s.cfg.ExportQueued, func() { s.runExport(e) })
	writeJSON(w, http.StatusAccepted, out)
}

// runExport moves an export from running to completed (or failed), taking
// its snapshot of the events when it starts running.
func (s *Server) runExport(e *export) {
	s.mu.Lock()
	e.Status = "running"
	var recs []*record
	for _, r := range s.records {
		if !r.ts.Before(e.Since) && r.ts.Before(e.Until) {
			recs = append(recs, r)
		}
	}
	resend := s.faults.Float64() < s.cfg.Faults.ResendRate
	fail := s.faults.Float64() < s.cfg.Faults.ExportFailRate
	s.mu.Unlock()
	if resend && len(recs) > 2 {
		// The source may resend: the file repeats a couple of events.
		recs = append(recs, recs[0], recs[len(recs)/2])
	}
	var buf bytes.Buffer
	ew, err := newExportWriter(&buf, e.Format, e.Compression == "gzip", s.cfg.AddedField)
	for _, r := range recs {
		if err == nil {
			err = ew.write(r)
		}
	}
	if err == nil {
		err = ew.close()
	}
	time.AfterFunc(s.cfg.ExportRunning, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		now := time.Now().UTC()
		e.CompletedAt = &now
		if err != nil || fail {
			msg := "injected export failure"
			if err != nil {
				msg = err.Error()
			}
			e.Status, e.Error = "failed", &msg
			return
		}
		sum := sha256.Sum256(buf.Bytes())
		hexSum := hex.EncodeToString(sum[:])
		n, size := int64(len(recs)), int64(buf.Len())
		exp := now.Add(s.cfg.ExportTTL)
		e.file = buf.Bytes()
		e.Status, e.RowCount, e.SizeBytes, e.SHA256, e.ExpiresAt = "completed", &n, &size, &hexSum, &exp
	})
}

func (s *Server) handleListExports(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	limit := 50
	if l := r.URL.Query().Get("limit"); l != "" {
		var err error
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 500 {
			writeError(w, http.StatusBadRequest, "invalid_parameter", "limit must be 1..500")
			return
		}
	}
	s.mu.Lock()
	out := []Export{}
	for i := len(s.order) - 1; i >= 0 && len(out) < limit; i-- {
		e := s.order[i]
		s.expire(e)
		if status == "" || e.Status == status {
			out = append(out, e.Export)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// expire marks a completed export expired past its expiry (mu held).
func (s *Server) expire(e *export) {
	if e.Status == "completed" && e.ExpiresAt != nil && time.Now().After(*e.ExpiresAt) {
		e.Status, e.file = "expired", nil
	}
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*export, Export, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.exports[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no export "+r.PathValue("id"))
		return nil, Export{}, false
	}
	s.expire(e)
	return e, e.Export, true
}

func (s *Server) handleGetExport(w http.ResponseWriter, r *http.Request) {
	if _, out, ok := s.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	e, out, ok := s.lookup(w, r)
	if !ok {
		return
	}
	switch out.Status {
	case "queued", "running":
		writeError(w, http.StatusConflict, "export_not_ready", "export is "+out.Status)
		return
	case "failed":
		writeError(w, http.StatusConflict, "export_failed", "export failed")
		return
	case "expired":
		writeError(w, http.StatusGone, "export_expired", "export expired")
		return
	}
	s.mu.Lock()
	file := e.file
	s.mu.Unlock()
	start := int64(0)
	if rg := r.Header.Get("Range"); rg != "" {
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"), 10, 64)
		if !strings.HasPrefix(rg, "bytes=") || !strings.HasSuffix(rg, "-") || err != nil || n < 0 || n > int64(len(file)) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(file)))
			writeError(w, http.StatusRequestedRangeNotSatisfiable, "invalid_range", "want bytes=N- within the file")
			return
		}
		start = n
	}
	h := w.Header()
	h.Set("ETag", `"`+*out.SHA256+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(int64(len(file))-start, 10))
	if out.Compression == "gzip" {
		h.Set("Content-Type", "application/gzip")
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	status := http.StatusOK
	if start > 0 || r.Header.Get("Range") != "" {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(file)-1, len(file)))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	body := file[start:]
	if len(body) > 1 && s.roll(s.faultCfg().DropRate) {
		s.stats.dropped.Add(1)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection breaks mid-download
	}
	w.Write(body)
}
