package keeptrusts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/ktpipe/ktpipe/payload"
)

// Export statuses of the contract (declared in payload, beside Export).
const (
	StatusQueued    = payload.StatusQueued
	StatusRunning   = payload.StatusRunning
	StatusCompleted = payload.StatusCompleted
	StatusFailed    = payload.StatusFailed
	StatusExpired   = payload.StatusExpired
)

// ExportRequest asks for an export of events.
type ExportRequest struct {
	Type        string `json:"type"`
	Format      string `json:"format"`
	Compression string `json:"compression,omitempty"`
	Since       string `json:"since,omitempty"`
	Until       string `json:"until,omitempty"`
	Description string `json:"description,omitempty"`
}

// Export is an export job (declared in payload: workflows carry it).
type Export = payload.Export

// CreateExport starts an export. A repeated call with the same
// idempotencyKey within 24 h returns the export already created
// (replayed=true) and creates nothing.
func (c *Client) CreateExport(ctx context.Context, r ExportRequest, idempotencyKey string) (exp Export, replayed bool, err error) {
	const op = "create export"
	if len(idempotencyKey) > 255 {
		return Export{}, false, fmt.Errorf("keeptrusts %s: idempotency key longer than 255", op)
	}
	if r.Type == "" {
		r.Type = "events"
	}
	body, err := json.Marshal(r)
	if err != nil {
		return Export{}, false, fmt.Errorf("keeptrusts %s: %w", op, err)
	}
	ctx, cancel := c.withCallTimeout(ctx, op)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/exports", nil, bytes.NewReader(body))
	if err != nil {
		return Export{}, false, fmt.Errorf("keeptrusts %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := c.do(req, op, http.StatusAccepted, http.StatusOK)
	if err != nil {
		return Export{}, false, err
	}
	defer resp.Body.Close()
	b, err := c.readCapped(op, resp)
	if err != nil {
		return Export{}, false, err
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		return Export{}, false, fmt.Errorf("keeptrusts %s: decode: %w", op, errors.Join(errBrokenBody, err))
	}
	return exp, resp.StatusCode == http.StatusOK, nil
}

// GetExport returns one export and its status.
func (c *Client) GetExport(ctx context.Context, id string) (Export, error) {
	var exp Export
	_, err := c.getJSON(ctx, "get export", "/v1/exports/"+url.PathEscape(id), nil, &exp)
	return exp, err
}

// ListExports lists exports, newest first; status "" means any.
func (c *Client) ListExports(ctx context.Context, status string, limit int) ([]Export, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var exps []Export
	_, err := c.getJSON(ctx, "list exports", "/v1/exports", q, &exps)
	return exps, err
}

// ChecksumError says a downloaded file does not match the export's sha256.
type ChecksumError struct {
	ExportID  string
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("export %s: sha256 %s, want %s; the partial file was discarded", e.ExportID, e.Got, e.Want)
}

// DownloadOptions tune Download.
type DownloadOptions struct {
	// MaxResumes bounds how often a broken connection is resumed within
	// one call (default 20); past that the error is returned, retryable.
	MaxResumes int
	// Progress is called with the file's size so far after each write.
	Progress func(bytes int64)
}

// Download writes export exp's file into f, continuing after the bytes f
// already holds (a resumed download: Range: bytes=N-), resuming again
// whenever the connection breaks, and verifies the whole file's sha256
// against exp.SHA256. On a mismatch f is truncated and a *ChecksumError
// returned.
func (c *Client) Download(ctx context.Context, exp Export, f *os.File, opts DownloadOptions) error {
	op := "download export " + exp.ID
	if opts.MaxResumes <= 0 {
		opts.MaxResumes = 20
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	h := sha256.New()
	offset, err := io.Copy(h, f) // the bytes a previous attempt saved
	if err != nil {
		return fmt.Errorf("%s: hash partial file: %w", op, err)
	}
	size := int64(-1)
	if exp.SizeBytes != nil {
		size = *exp.SizeBytes
	}
	if size >= 0 && offset > size {
		return c.discard(f, op, fmt.Errorf("partial file has %d bytes, export has %d", offset, size))
	}
	var lastErr error
	for attempt := 0; size < 0 || offset < size; attempt++ {
		if attempt > opts.MaxResumes {
			return fmt.Errorf("%s: gave up after %d resumes: %w", op, opts.MaxResumes, lastErr)
		}
		if attempt > 0 {
			wait := min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)
			if ra := RetryAfter(lastErr); ra > wait {
				wait = ra
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", op, ctx.Err())
			case <-time.After(wait):
			}
		}
		var n int64
		var done bool
		n, done, lastErr = c.downloadFrom(ctx, exp.ID, offset, f, h, opts.Progress)
		offset += n
		if lastErr == nil && done {
			break
		}
		if lastErr != nil && !Retryable(lastErr) {
			return lastErr
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
	}
	got := hex.EncodeToString(h.Sum(nil))
	if exp.SHA256 != nil && *exp.SHA256 != got {
		return c.discard(f, op, &ChecksumError{ExportID: exp.ID, Want: *exp.SHA256, Got: got})
	}
	return nil
}

func (c *Client) discard(f *os.File, op string, cause error) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("%s: %w (and truncate: %v)", op, cause, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w (and seek: %v)", op, cause, err)
	}
	return fmt.Errorf("%s: %w", op, cause)
}

// downloadFrom makes one request from offset and appends what arrives to
// f and h; done is true when the body ended at its announced length.
func (c *Client) downloadFrom(ctx context.Context, id string, offset int64, f *os.File, h hash.Hash, progress func(int64)) (int64, bool, error) {
	op := "download export " + id
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/exports/"+url.PathEscape(id)+"/download", nil, nil)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", op, err)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.do(req, op, http.StatusOK, http.StatusPartialContent)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if offset > 0 && resp.StatusCode != http.StatusPartialContent {
		// The server ignored Range: start the file over.
		if err := f.Truncate(0); err != nil {
			return 0, false, fmt.Errorf("%s: %w", op, err)
		}
		h.Reset()
		return c.copyBody(resp, f, h, -offset, progress, 0)
	}
	return c.copyBody(resp, f, h, 0, progress, offset)
}

func (c *Client) copyBody(resp *http.Response, f *os.File, h hash.Hash, delta int64, progress func(int64), base int64) (int64, bool, error) {
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return delta, false, err
	}
	w := io.MultiWriter(f, h)
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, rerr := resp.Body.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return delta + n, false, fmt.Errorf("write download: %w", err)
			}
			n += int64(m)
			if progress != nil {
				progress(base + n)
			}
		}
		if errors.Is(rerr, io.EOF) {
			if resp.ContentLength >= 0 && n != resp.ContentLength {
				return delta + n, false, fmt.Errorf("download: %w after %d of %d bytes", io.ErrUnexpectedEOF, n, resp.ContentLength)
			}
			return delta + n, true, nil
		}
		if rerr != nil {
			return delta + n, false, fmt.Errorf("download: %w", errors.Join(errBrokenBody, rerr))
		}
	}
}
