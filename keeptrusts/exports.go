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
	"strings"
	"time"
	"unicode/utf8"

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
// (replayed=true) and creates nothing. A key longer than the contract's
// 255 is shortened (fitKey) rather than refused.
func (c *Client) CreateExport(ctx context.Context, r ExportRequest, idempotencyKey string) (exp Export, replayed bool, err error) {
	const op = "create export"
	idempotencyKey = fitKey(idempotencyKey)
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
	if err := decode(op, resp, b, &exp); err != nil {
		return Export{}, false, err
	}
	return exp, resp.StatusCode == http.StatusOK, nil
}

// maxKeyLen is the contract's maxLength of Idempotency-Key.
const maxKeyLen = 255

// fitKey returns key unchanged when the contract allows its length, and
// otherwise its head and the sha256 of the whole key: still the same for
// the same key (a retried create must replay) and different for keys that
// differ anywhere, however long (a workflow id has no length bound).
func fitKey(key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	tail := "~" + hex.EncodeToString(sum[:])
	head := maxKeyLen - len(tail)
	for head > 0 && !utf8.RuneStart(key[head]) { // do not cut a character in two
		head--
	}
	return key[:head] + tail
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

// ChecksumError says a downloaded file does not match the export: its
// sha256 (Export.sha256 or the ETag), or its size (Export.size_bytes,
// Content-Length or the Content-Range total).
type ChecksumError struct {
	ExportID  string
	Want, Got string
	What      string // what differs: "sha256" (when empty) or "size"
}

func (e *ChecksumError) Error() string {
	if e.What == "size" {
		return fmt.Sprintf("export %s: file has %s bytes, want %s; the partial file was discarded", e.ExportID, e.Got, e.Want)
	}
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
// whenever the connection breaks, and verifies the whole file's size and
// sha256. Where exp.SizeBytes or exp.SHA256 is null (the contract allows
// it) the response tells them: Content-Length or the Content-Range total,
// and the ETag (the contract's quoted sha256 of the file). On a mismatch
// f is truncated and a *ChecksumError returned.
func (c *Client) Download(ctx context.Context, exp Export, f *os.File, opts DownloadOptions) error {
	d := &download{c: c, id: exp.ID, op: "download export " + exp.ID, f: f, h: sha256.New(), size: -1, progress: opts.Progress}
	if opts.MaxResumes <= 0 {
		opts.MaxResumes = 20
	}
	if exp.SizeBytes != nil {
		d.size = *exp.SizeBytes
	}
	if exp.SHA256 != nil {
		// Hex is case-insensitive; the sums computed here are lower-case.
		d.sha = strings.ToLower(*exp.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w", d.op, err)
	}
	var err error
	d.offset, err = io.Copy(d.h, f) // the bytes a previous attempt saved
	if err != nil {
		return fmt.Errorf("%s: hash partial file: %w", d.op, err)
	}
	if d.size >= 0 && d.offset > d.size {
		return c.discard(f, d.op, fmt.Errorf("partial file has %d bytes, export has %d", d.offset, d.size))
	}
	var lastErr error
	for attempt := 0; d.size < 0 || d.offset < d.size; attempt++ {
		if attempt > opts.MaxResumes {
			return fmt.Errorf("%s: gave up after %d resumes: %w", d.op, opts.MaxResumes, lastErr)
		}
		if attempt > 0 {
			wait := min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)
			if ra := RetryAfter(lastErr); ra > wait {
				wait = ra
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", d.op, ctx.Err())
			case <-time.After(wait):
			}
		}
		var done bool
		done, lastErr = d.fetch(ctx)
		if lastErr == nil && done {
			break
		}
		var ce *ChecksumError
		if errors.As(lastErr, &ce) {
			return c.discard(f, d.op, lastErr)
		}
		if lastErr != nil && !Retryable(lastErr) {
			return lastErr
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", d.op, ctx.Err())
		}
	}
	// A response that ended cleanly but short (a 200 smaller than the
	// export) ends the loop too: the size decides.
	if d.size >= 0 && d.offset != d.size {
		return c.discard(f, d.op, d.sizeError(strconv.FormatInt(d.offset, 10)))
	}
	if got := hex.EncodeToString(d.h.Sum(nil)); d.sha != "" && d.sha != got {
		return c.discard(f, d.op, &ChecksumError{ExportID: exp.ID, Want: d.sha, Got: got})
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

// download is one Download's state: the file so far and what it must be.
type download struct {
	c        *Client
	id, op   string
	f        *os.File
	h        hash.Hash // of the bytes in f
	offset   int64     // bytes in f
	size     int64     // the export's size; -1 while unknown
	sha      string    // the export's hex sha256; "" while unknown
	progress func(int64)
}

// errStartOver says the partial file was discarded because the server's
// answer could not be appended to it safely; the next request starts at
// byte 0.
var errStartOver = errors.New("partial file discarded, download starts over")

// fetch makes one request from d.offset and appends what arrives. done is
// true when the body ended at its announced length, or when a 416 says
// there is nothing after offset and the file so far is verifiably whole.
func (d *download) fetch(ctx context.Context) (done bool, err error) {
	req, err := d.c.newRequest(ctx, http.MethodGet, "/v1/exports/"+url.PathEscape(d.id)+"/download", nil, nil)
	if err != nil {
		return false, fmt.Errorf("%s: %w", d.op, err)
	}
	ok := []int{http.StatusOK, http.StatusPartialContent}
	if d.offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(d.offset, 10)+"-")
		ok = append(ok, http.StatusRequestedRangeNotSatisfiable)
	}
	resp, err := d.c.do(req, d.op, ok...)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	// The contract's ETag is the quoted sha256 of the file; a weak or
	// malformed one says nothing about the bytes.
	if etag := resp.Header.Get("ETag"); d.sha == "" && len(etag) == 66 && etag[0] == '"' && etag[65] == '"' {
		if _, err := hex.DecodeString(etag[1:65]); err == nil {
			d.sha = strings.ToLower(etag[1:65])
		}
	}
	cr := resp.Header.Get("Content-Range")
	switch resp.StatusCode {
	case http.StatusRequestedRangeNotSatisfiable:
		// Nothing after offset (RFC 9110: Content-Range "bytes */size").
		// The file is whole only if its size or sha256 says so.
		if _, total, ok := contentRange(cr); ok && d.size < 0 {
			d.size = total
		}
		if d.size == d.offset || (d.size < 0 && d.sha != "" && hex.EncodeToString(d.h.Sum(nil)) == d.sha) {
			return true, nil
		}
		return false, d.startOver(fmt.Sprintf("416 for bytes=%d- and the file so far cannot be verified", d.offset))
	case http.StatusPartialContent:
		start, total, ok := contentRange(cr)
		if !ok || start != d.offset {
			return false, d.startOver(fmt.Sprintf("206 for bytes=%d- has Content-Range %q", d.offset, cr))
		}
		if total >= 0 && d.size < 0 {
			d.size = total
		} else if total >= 0 && total != d.size {
			return false, d.sizeError(strconv.FormatInt(total, 10))
		}
	case http.StatusOK:
		if d.offset > 0 { // the server ignored Range: start the file over
			if err := d.truncate(); err != nil {
				return false, err
			}
		}
		if d.size < 0 {
			d.size = resp.ContentLength // -1 when not sent
		} else if resp.ContentLength >= 0 && resp.ContentLength != d.size {
			return false, d.sizeError(strconv.FormatInt(resp.ContentLength, 10))
		}
	}
	return d.copy(resp)
}

// copy appends the body to f and h. Bytes past the known size are not
// written: they are an error.
func (d *download) copy(resp *http.Response) (bool, error) {
	if _, err := d.f.Seek(0, io.SeekEnd); err != nil {
		return false, fmt.Errorf("%s: %w", d.op, err)
	}
	w := io.MultiWriter(d.f, d.h)
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, rerr := resp.Body.Read(buf)
		tooLong := d.size >= 0 && d.offset+int64(m) > d.size
		if tooLong {
			m = int(d.size - d.offset)
		}
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return false, fmt.Errorf("%s: write: %w", d.op, err)
			}
			n += int64(m)
			d.offset += int64(m)
			if d.progress != nil {
				d.progress(d.offset)
			}
		}
		if tooLong {
			return false, d.sizeError("more than " + strconv.FormatInt(d.size, 10))
		}
		if errors.Is(rerr, io.EOF) {
			if resp.ContentLength >= 0 && n != resp.ContentLength {
				return false, fmt.Errorf("%s: %w after %d of %d bytes", d.op, io.ErrUnexpectedEOF, n, resp.ContentLength)
			}
			return true, nil
		}
		if rerr != nil {
			return false, fmt.Errorf("%s: %w", d.op, errors.Join(errBrokenBody, rerr))
		}
	}
}

func (d *download) sizeError(got string) error {
	return &ChecksumError{ExportID: d.id, What: "size", Want: strconv.FormatInt(d.size, 10), Got: got}
}

// startOver empties the file and returns a retryable error saying why.
func (d *download) startOver(why string) error {
	if err := d.truncate(); err != nil {
		return err
	}
	return fmt.Errorf("%s: %s: %w", d.op, why, errStartOver)
}

func (d *download) truncate() error {
	if err := d.f.Truncate(0); err != nil {
		return fmt.Errorf("%s: truncate: %w", d.op, err)
	}
	d.h.Reset()
	d.offset = 0
	if d.progress != nil {
		d.progress(0)
	}
	return nil
}

// contentRange parses "bytes start-end/total", "bytes start-end/*" or
// "bytes */total"; an unknown start or total is -1.
func contentRange(s string) (start, total int64, ok bool) {
	rng, tot, found := strings.Cut(strings.TrimPrefix(s, "bytes "), "/")
	if !found || !strings.HasPrefix(s, "bytes ") {
		return 0, 0, false
	}
	start, total = -1, -1
	var err error
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return 0, 0, false
		}
	}
	if rng != "*" {
		first, _, found := strings.Cut(rng, "-")
		if start, err = strconv.ParseInt(first, 10, 64); !found || err != nil || start < 0 {
			return 0, 0, false
		}
	}
	return start, total, true
}
