package keeptrusts

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// TailMessage is one event of the real-time tail: its data (the event's
// data: lines joined with "\n") and the stream's last event id when it was
// dispatched, the cursor to resume after it.
type TailMessage struct {
	Cursor string
	Data   []byte
}

// TailOptions choose where a tail starts and what it shows.
type TailOptions struct {
	Cursor   string // resume after this cursor; empty starts at new events
	Decision string
	// Retry is the reconnection delay until the stream sets one with a
	// retry: field (default 1 s).
	Retry time.Duration
	// MaxBackoff caps the wait after failed connection attempts, which
	// back off exponentially from the reconnection delay (default 30 s).
	MaxBackoff time.Duration
	// OnReconnect, when set, is told each wait before reconnecting, the
	// id the next connection resumes from, and why the last one ended.
	OnReconnect func(wait time.Duration, lastEventID string, cause error)
}

// maxTailEventBytes bounds one event's data (and one line): events are a
// few KB; a stream sending more is broken, and buffering it would be
// unbounded.
const maxTailEventBytes = 16 << 20

// Tail streams events to fn until ctx ends or fn returns an error. It
// follows the Server-Sent Events processing model (WHATWG HTML §9.2): an
// event is dispatched only at its blank line, data: lines join with "\n",
// the last event id persists across events (an id-only message moves it
// too), retry: sets the reconnection delay, an event cut off by a dropped
// connection is discarded, and each reconnect sends Last-Event-ID, so no
// event is skipped or repeated.
func (c *Client) Tail(ctx context.Context, opts TailOptions, fn func(TailMessage) error) error {
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	s := &sseStream{lastID: opts.Cursor, retry: opts.Retry}
	failures := 0
	for {
		connected, err := c.tailOnce(ctx, s, opts.Decision, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var cbErr callbackError
		if errors.As(err, &cbErr) {
			return cbErr.err
		}
		if err != nil && !Retryable(err) {
			return err
		}
		// A stream that was open and dropped: wait the reconnection delay.
		// Failed attempts back off exponentially from it (the spec allows
		// it, and a down server should not be hammered).
		wait := s.retry
		if connected {
			failures = 0
		} else {
			failures++
			for i := 1; i < failures && wait < opts.MaxBackoff; i++ {
				wait *= 2
			}
			wait = min(wait, max(opts.MaxBackoff, s.retry))
		}
		wait = max(wait, RetryAfter(err))
		if opts.OnReconnect != nil {
			opts.OnReconnect(wait, s.lastID, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// sseStream is the state of an event source that outlives a connection:
// the last event id string and the reconnection time.
type sseStream struct {
	lastID string
	retry  time.Duration
}

// tailOnce makes one connection; connected says it was answered with an
// event stream, so the wait before the next one is not a backoff.
func (c *Client) tailOnce(ctx context.Context, s *sseStream, decision string, fn func(TailMessage) error) (connected bool, err error) {
	const op = "tail events"
	q := url.Values{}
	if decision != "" {
		q.Set("decision", decision)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/events/tail", q, nil)
	if err != nil {
		return false, fmt.Errorf("keeptrusts %s: %w", op, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	resp, err := c.do(req, op, http.StatusOK)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		// The spec fails the connection for good: this is not the API.
		return false, fmt.Errorf("keeptrusts %s: response is %q, not text/event-stream", op, resp.Header.Get("Content-Type"))
	}
	if err := s.read(resp.Body, fn); err != nil {
		return true, fmt.Errorf("keeptrusts %s: %w", op, err)
	}
	return true, nil
}

var utf8BOM = []byte("\xEF\xBB\xBF")

// read parses one connection's stream and dispatches its events. It
// returns when the stream ends, always with an error: an endless stream
// that ended was broken (errBrokenBody, retryable).
func (s *sseStream) read(r io.Reader, fn func(TailMessage) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxTailEventBytes+64)
	sc.Split(scanSSELines)
	// The data and event type buffers are per connection. The last event
	// id buffer starts at the id this connection resumed from rather than
	// empty, so an event without id: after a reconnect cannot erase the
	// position (with an id on every event, as the contract promises, the
	// two readings of the spec agree).
	var data []byte
	event, idBuf := "", s.lastID
	for first := true; sc.Scan(); first = false {
		line := sc.Bytes()
		if first {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if len(line) == 0 { // dispatch
			s.lastID = idBuf
			if len(data) == 0 {
				event = ""
				continue
			}
			msg := TailMessage{Cursor: s.lastID, Data: data[:len(data)-1]} // drop the last "\n"
			typ := event
			data, event = nil, ""
			if typ == "" || typ == "message" || typ == "event" { // the contract names its events "event"
				if err := fn(msg); err != nil {
					return callbackError{err}
				}
			}
			continue
		}
		if line[0] == ':' { // a comment: the keepalive
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if len(data)+len(value)+1 > maxTailEventBytes {
				return fmt.Errorf("an event's data exceeds %d bytes", maxTailEventBytes)
			}
			data = append(append(data, value...), '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				idBuf = string(value)
			}
		case "retry":
			if len(value) > 0 && len(bytes.Trim(value, "0123456789")) == 0 {
				ms, err := strconv.ParseInt(string(value), 10, 64)
				if err != nil || ms > MaxRetryAfter.Milliseconds() {
					ms = MaxRetryAfter.Milliseconds()
				}
				s.retry = max(time.Duration(ms)*time.Millisecond, MinSSERetry)
			}
		}
	}
	err := sc.Err()
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("a line exceeds %d bytes", maxTailEventBytes)
	}
	var te *TimeoutError
	if errors.As(err, &te) {
		return te
	}
	if err != nil {
		return errors.Join(errBrokenBody, err)
	}
	return errBrokenBody // an endless stream ended; what was pending is discarded
}

// scanSSELines splits a stream into lines ended by CRLF, LF or CR. At the
// end of the stream, an unterminated last line is dropped: the connection
// broke inside it.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		switch {
		case i+1 < len(data) && data[i+1] == '\n':
			return i + 2, data[:i], nil
		case i+1 < len(data) || atEOF:
			return i + 1, data[:i], nil
		}
		return 0, nil, nil // a CR at the end of what arrived: an LF may follow
	}
	if atEOF {
		return len(data), nil, nil
	}
	return 0, nil, nil
}
