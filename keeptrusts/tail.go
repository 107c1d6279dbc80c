package keeptrusts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TailMessage is one event of the real-time tail: the event's JSON and
// the cursor just after it.
type TailMessage struct {
	Cursor string
	Data   []byte
}

// TailOptions choose where a tail starts and what it shows.
type TailOptions struct {
	Cursor   string // resume after this cursor; empty starts at new events
	Decision string
	// MaxBackoff caps the wait between reconnects (default 30 s).
	MaxBackoff time.Duration
}

// Tail streams events to fn until ctx ends or fn returns an error. A
// broken stream reconnects with Last-Event-ID, so no event is skipped.
func (c *Client) Tail(ctx context.Context, opts TailOptions, fn func(TailMessage) error) error {
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	cursor := opts.Cursor
	backoff := 500 * time.Millisecond
	for {
		got, err := c.tailOnce(ctx, cursor, opts.Decision, func(m TailMessage) error {
			cursor = m.Cursor
			return fn(m)
		})
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
		if got {
			backoff = 500 * time.Millisecond
		}
		wait := max(backoff, RetryAfter(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, opts.MaxBackoff)
	}
}

type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

func (c *Client) tailOnce(ctx context.Context, cursor, decision string, fn func(TailMessage) error) (bool, error) {
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
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	resp, err := c.do(req, op, http.StatusOK)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, event string
	var data []string
	got := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 && (event == "" || event == "event") {
				if err := fn(TailMessage{Cursor: id, Data: []byte(strings.Join(data, "\n"))}); err != nil {
					return got, callbackError{err}
				}
				got = true
			}
			id, event, data = "", "", nil
		case strings.HasPrefix(line, ":"):
			// comment (keepalive)
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return got, fmt.Errorf("keeptrusts %s: %w", op, errors.Join(errBrokenBody, err))
	}
	return got, fmt.Errorf("keeptrusts %s: %w", op, errBrokenBody)
}
