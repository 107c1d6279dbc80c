package keeptrusts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Default bounds of a Client. Every call ends: a connection within
// Connect, headers within Response, a body that goes quiet within
// IdleRead, and a JSON call (page, count, export status) within Call.
const (
	// DefaultConnectTimeout bounds dialing and the TLS handshake: a
	// reachable API connects in well under a second.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultResponseTimeout bounds the wait for response headers once the
	// request is sent: room for a slow count or group_by on the server.
	DefaultResponseTimeout = 60 * time.Second
	// DefaultIdleReadTimeout fails a body that sends nothing this long:
	// twice the tail's 15 s keepalive, far longer than any pause of a
	// healthy download.
	DefaultIdleReadTimeout = 30 * time.Second
	// DefaultCallTimeout bounds a whole JSON call, body included, so a
	// server that trickles bytes cannot hold a call forever. Downloads
	// and the tail have no total bound (they are long by nature); the
	// idle-read bound and the caller's context end them.
	DefaultCallTimeout = 2 * time.Minute
	// DefaultMaxBodyBytes caps a JSON response (a page of events, a list
	// of exports or gateways) held in memory: a default 1000-event page is
	// about 0.5 MB, the API's largest (10,000 events) about 5 MB.
	DefaultMaxBodyBytes = 64 << 20
	// MaxRetryAfter is the longest Retry-After honoured. A server asking
	// for longer (9,000,000,000 s, a date in 9999) is broken or down for
	// longer than that; after 5 min the caller asks again and is told again.
	MaxRetryAfter = 5 * time.Minute
	// MinSSERetry is the shortest reconnection delay a stream's retry:
	// field may set. With retry: 0, a server that drops every connection
	// at once would get reconnects as fast as the client can make them.
	MinSSERetry = 100 * time.Millisecond
)

// Timeouts bound the time of every call. Zero fields take the defaults.
type Timeouts struct {
	Connect  time.Duration // dial + TLS handshake
	Response time.Duration // request sent → response headers
	IdleRead time.Duration // longest silence inside a response body
	Call     time.Duration // a whole JSON call, body included
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = DefaultConnectTimeout
	}
	if t.Response <= 0 {
		t.Response = DefaultResponseTimeout
	}
	if t.IdleRead <= 0 {
		t.IdleRead = DefaultIdleReadTimeout
	}
	if t.Call <= 0 {
		t.Call = DefaultCallTimeout
	}
	return t
}

// WithTimeouts sets the client's time bounds (zero fields: defaults).
// Connect and Response shape the client's own transport; with
// WithHTTPClient they are the caller's business, IdleRead and Call apply
// either way.
func WithTimeouts(t Timeouts) Option { return func(c *Client) { c.timeouts = t.withDefaults() } }

// WithMaxBodyBytes caps JSON response bodies (default DefaultMaxBodyBytes).
func WithMaxBodyBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

func newTransport(t Timeouts) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = t.Connect
	tr.ResponseHeaderTimeout = t.Response
	return tr
}

// TimeoutError says a call reached one of the client's time bounds. It is
// retryable: a later attempt may find the server well.
type TimeoutError struct {
	Op    string
	Bound string // "idle read" or "call"
	Limit time.Duration
}

func (e *TimeoutError) Error() string {
	if e.Bound == "idle read" {
		return fmt.Sprintf("keeptrusts %s: response body sent nothing for %s (idle-read timeout, KEEPTRUSTS_IDLE_READ_TIMEOUT)", e.Op, e.Limit)
	}
	return fmt.Sprintf("keeptrusts %s: call took longer than %s (call timeout, KEEPTRUSTS_CALL_TIMEOUT)", e.Op, e.Limit)
}

// withCallTimeout bounds one whole JSON call.
func (c *Client) withCallTimeout(ctx context.Context, op string) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, c.timeouts.Call, &TimeoutError{Op: op, Bound: "call", Limit: c.timeouts.Call})
}

// boundError returns the *TimeoutError that ended ctx, if one did.
func boundError(ctx context.Context) *TimeoutError {
	var te *TimeoutError
	if errors.As(context.Cause(ctx), &te) {
		return te
	}
	return nil
}

// watchdogBody fails a body that sends nothing for idle: a timer armed
// while Read waits cancels the request's context, which closes the
// connection and unblocks Read. Time spent by the caller between reads
// does not count.
type watchdogBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration
	timer  *time.Timer
	// onEnd, when set, is told once how the body ended: nil at its end
	// or when closed before it, the error when a read failed.
	onEnd func(error)
}

// ended tells onEnd once.
func (b *watchdogBody) ended(err error) {
	if f := b.onEnd; f != nil {
		b.onEnd = nil
		f(err)
	}
}

func newWatchdogBody(ctx context.Context, cancel context.CancelCauseFunc, rc io.ReadCloser, op string, idle time.Duration) *watchdogBody {
	b := &watchdogBody{rc: rc, ctx: ctx, cancel: cancel, idle: idle}
	te := &TimeoutError{Op: op, Bound: "idle read", Limit: idle}
	b.timer = time.AfterFunc(idle, func() { cancel(te) })
	b.timer.Stop()
	return b
}

func (b *watchdogBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		if te := boundError(b.ctx); te != nil {
			err = te
		}
		b.ended(err)
		return n, err
	}
	if err == io.EOF {
		b.ended(nil)
	}
	return n, err
}

func (b *watchdogBody) Close() error {
	b.ended(nil)
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// readCapped reads a whole JSON body of at most c.maxBody bytes; a bigger
// one is a non-retryable *APIError (the same request would get it again).
func (c *Client) readCapped(op string, resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		var te *TimeoutError
		if errors.As(err, &te) {
			return nil, te
		}
		return nil, fmt.Errorf("keeptrusts %s: read response: %w", op, errors.Join(errBrokenBody, err))
	}
	if int64(len(b)) > c.maxBody {
		return nil, &APIError{Op: op, Status: resp.StatusCode, Code: "response_too_large",
			Message: fmt.Sprintf("response body exceeds the %d-byte limit (KEEPTRUSTS_MAX_RESPONSE_BYTES; for pages, a smaller KTPIPE_PAGE_SIZE)", c.maxBody)}
	}
	return b, nil
}

// parseRetryAfter reads Retry-After (delay-seconds or an HTTP date) as a
// wait in [0, MaxRetryAfter]; ok is false when the value is neither.
func parseRetryAfter(s string, now time.Time) (d time.Duration, ok bool) {
	s = strings.TrimSpace(s)
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n > uint64(MaxRetryAfter/time.Second) { // too big for uint64 is too big too
			return MaxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(s); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter), true
	}
	return 0, false
}

// origin is scheme://host:port with the default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// maxRedirects bounds a chain of same-origin redirects.
const maxRedirects = 5

// checkRedirect follows redirects within the base URL's origin only. Go's
// client keeps the Authorization header on a redirect to the same host on
// another port (it compares host names only), so anything off-origin is
// refused before the request is made: the token never leaves the origin.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	status := 0
	if req.Response != nil {
		status = req.Response.StatusCode
	}
	if to, want := origin(req.URL), origin(c.base); to != want {
		return &APIError{Status: status, Code: "redirect_refused",
			Message: fmt.Sprintf("redirect to %s refused: only redirects within %s (the base URL's scheme, host and port) are followed, so the token is not sent elsewhere", to, want)}
	}
	if len(via) >= maxRedirects {
		return &APIError{Status: status, Code: "too_many_redirects", Message: fmt.Sprintf("more than %d redirects", maxRedirects)}
	}
	return nil
}
