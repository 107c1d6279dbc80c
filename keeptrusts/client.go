// Package keeptrusts is a client for the Keeptrusts Events, Export and
// Webhook API (../shared/keeptrusts-api.yaml). It speaks only the
// contract, so it works against any server that honours it.
package keeptrusts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Client calls the Keeptrusts API.
type Client struct {
	base     *url.URL
	token    *string // a pointer, so fmt of a Client prints an address, not the token
	http     *http.Client
	timeouts Timeouts
	maxBody  int64
	observe  Observer
}

// Observer is told about every request the client sends: its operation,
// the HTTP status (0 when no response came; err says why), and a
// Retry-After the server asked for. Metrics hook in here.
type Observer interface {
	Request(operation string, status int, err error)
	RetryAfter(d time.Duration)
}

// WithObserver reports every request to o.
func WithObserver(o Observer) Option { return func(c *Client) { c.observe = o } }

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport). Its CheckRedirect is
// replaced: only same-origin redirects are followed.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New returns a client for baseURL (e.g. https://api.keeptrusts.com)
// that sends token as its bearer credential. The token goes only into the
// Authorization header of requests to baseURL's origin, never into an
// error or a log line of this package.
func New(baseURL string, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("keeptrusts base URL %q: must be an absolute http(s) URL", baseURL)
	}
	if token == "" {
		return nil, errors.New("keeptrusts token: must not be empty")
	}
	// Refused here, not on every request: Go's refusal of such a header
	// is a *url.Error, which Retryable counts as a network failure.
	if !httpguts.ValidHeaderFieldValue(token) {
		return nil, errors.New("keeptrusts token: contains a control character (newline, CR, NUL, ...) that an HTTP header cannot carry")
	}
	if strings.TrimSpace(token) != token {
		return nil, errors.New("keeptrusts token: has leading or trailing whitespace, which the Authorization header would not carry as is")
	}
	c := &Client{base: u, token: &token, timeouts: Timeouts{}.withDefaults(), maxBody: DefaultMaxBodyBytes}
	for _, o := range opts {
		o(c)
	}
	hc := http.Client{Transport: newTransport(c.timeouts)}
	if c.http != nil {
		hc = *c.http
	}
	hc.CheckRedirect = c.checkRedirect
	c.http = &hc
	return c, nil
}

// APIError is an error response of the contract.
type APIError struct {
	Op         string // the operation, e.g. "list events"
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // from Retry-After on 429
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("keeptrusts %s: HTTP %d", e.Op, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return msg
}

// Retryable reports whether trying again may succeed: 429 and 5xx.
func (e *APIError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Retryable reports whether err is worth retrying: a retryable API error,
// a time bound of the client, or a network failure (not a context
// cancellation, nor a server certificate that failed verification).
func Retryable(err error) bool {
	var te *TimeoutError
	if errors.As(err, &te) {
		return true
	}
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Retryable()
	}
	var ce *ChecksumError
	if errors.As(err, &ce) {
		return true // the file is discarded; a fresh download may be fine
	}
	if Untrusted(err) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errBrokenBody) || errors.Is(err, errStartOver)
}

// Untrusted reports whether err is a failed check of the server's TLS
// certificate. It arrives inside a *url.Error (a net.Error), but the
// same certificate fails the same way until someone changes it or the
// trust store.
func Untrusted(err error) bool {
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// RetryAfter returns the server's requested wait, if err carries one.
func RetryAfter(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

var errBrokenBody = errors.New("response body ended early")

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+*c.token)
	req.Header.Set("User-Agent", "ktpipe")
	return req, nil
}

// do sends req and returns the response when its status is one of ok;
// anything else becomes an *APIError. Network errors keep their type but
// never carry the token (it is in a header, not the URL). The response
// body fails with a *TimeoutError when it sends nothing for the idle-read
// bound.
func (c *Client) do(req *http.Request, op string, ok ...int) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := c.http.Do(req.WithContext(ctx))
	if err != nil {
		if c.observe != nil {
			c.observe.Request(op, 0, err)
		}
		cancel(nil)
		var ae *APIError
		if errors.As(err, &ae) { // refused by checkRedirect
			ae.Op = op
			return nil, ae
		}
		if te := boundError(ctx); te != nil {
			return nil, te
		}
		return nil, fmt.Errorf("keeptrusts %s: %w", op, err)
	}
	wd := newWatchdogBody(ctx, cancel, resp.Body, op, c.timeouts.IdleRead)
	resp.Body = wd
	for _, s := range ok {
		if resp.StatusCode == s {
			// Observed when the body ends: an answer whose body then
			// stalls or breaks is a failed call, whatever its status.
			if c.observe != nil {
				status := resp.StatusCode
				wd.onEnd = func(err error) {
					if err != nil {
						status = 0
					}
					c.observe.Request(op, status, err)
				}
			}
			return resp, nil
		}
	}
	if c.observe != nil {
		c.observe.Request(op, resp.StatusCode, nil)
	}
	defer resp.Body.Close()
	ae := &APIError{Op: op, Status: resp.StatusCode}
	var body struct {
		Error struct{ Code, Message string }
	}
	if b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); json.Unmarshal(b, &body) == nil {
		ae.Code, ae.Message = body.Error.Code, body.Error.Message
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		ae.RetryAfter, _ = parseRetryAfter(s, time.Now())
	}
	if resp.StatusCode == http.StatusTooManyRequests && ae.RetryAfter == 0 {
		ae.RetryAfter = time.Second // the contract promises Retry-After; wait a little anyway
	}
	if c.observe != nil && ae.RetryAfter > 0 {
		c.observe.RetryAfter(ae.RetryAfter) // every caller waits at least this before trying again
	}
	return nil, ae
}

func (c *Client) getJSON(ctx context.Context, op, path string, q url.Values, out any) (http.Header, error) {
	ctx, cancel := c.withCallTimeout(ctx, op)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, fmt.Errorf("keeptrusts %s: %w", op, err)
	}
	resp, err := c.do(req, op, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := c.readCapped(op, resp)
	if err != nil {
		return nil, err
	}
	if err := decode(op, resp, b, out); err != nil {
		return nil, err
	}
	return resp.Header, nil
}

// decode unmarshals b, a body readCapped read to its end. A read that
// broke failed there (retryable); a body that arrived whole and does not
// decode will not decode next time either: a non-retryable *APIError
// naming what is wrong. Only where nothing marks the body's end (no
// Content-Length, chunks, HTTP/2 frames or gzip trailer) can a closed
// connection pass for that end, so there an incomplete document is
// still a broken body.
func decode(op string, resp *http.Response, b []byte, out any) error {
	err := json.Unmarshal(b, out)
	if err == nil {
		return nil
	}
	if !framed(resp) && !json.Valid(b) {
		return fmt.Errorf("keeptrusts %s: decode response: %w", op, errors.Join(errBrokenBody, err))
	}
	return &APIError{Op: op, Status: resp.StatusCode, Code: "malformed_response",
		Message: "response is not what the contract says: " + err.Error()}
}

// framed reports whether something marks the end of resp's body
// (Content-Length, chunks, HTTP/2 frames, a gzip trailer); without it a
// connection that closed early looks like the body's end.
func framed(resp *http.Response) bool {
	return resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 || resp.ProtoMajor >= 2 || resp.Uncompressed
}

// Window bounds events by timestamp: Since <= timestamp < Until. Since is
// an RFC 3339 time or a relative duration (30d); empty fields take the
// server's defaults.
type Window struct {
	Since    string
	Until    time.Time
	Decision string
}

func (w Window) values() url.Values {
	q := url.Values{}
	if w.Since != "" {
		q.Set("since", w.Since)
	}
	if !w.Until.IsZero() {
		q.Set("until", w.Until.UTC().Format(time.RFC3339Nano))
	}
	if w.Decision != "" {
		q.Set("decision", w.Decision)
	}
	return q
}

// PageQuery selects a page of events. A Cursor wins over Window.Since.
type PageQuery struct {
	Window
	Cursor string
	Limit  int
}

// Page is one page of events as the server sent it (a JSON array), and
// where to continue.
type Page struct {
	Body       []byte
	NextCursor string
	HasMore    bool
}

// ListEvents fetches one page in ingestion order.
func (c *Client) ListEvents(ctx context.Context, pq PageQuery) (Page, error) {
	const op = "list events"
	q := pq.values()
	if pq.Cursor != "" {
		q.Set("cursor", pq.Cursor)
		q.Del("since")
	}
	if pq.Limit > 0 {
		q.Set("limit", strconv.Itoa(pq.Limit))
	}
	ctx, cancel := c.withCallTimeout(ctx, op)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/events", q, nil)
	if err != nil {
		return Page{}, fmt.Errorf("keeptrusts %s: %w", op, err)
	}
	resp, err := c.do(req, op, http.StatusOK)
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	body, err := c.readCapped(op, resp)
	if err != nil {
		return Page{}, err
	}
	// A page cut short where nothing marks its end would reach the
	// decoder as a malformed export, which is final: it is a broken
	// body, retried.
	if !framed(resp) && !json.Valid(body) {
		return Page{}, fmt.Errorf("keeptrusts %s: page ended early (no length, the connection closed): %w", op, errBrokenBody)
	}
	next := resp.Header.Get("X-Next-Cursor")
	if next == "" {
		return Page{}, &APIError{Op: op, Status: resp.StatusCode, Message: "page without X-Next-Cursor"}
	}
	return Page{Body: body, NextCursor: next, HasMore: resp.Header.Get("X-Has-More") == "true"}, nil
}

// Count returns the number of events in the window (until defaults to now).
func (c *Client) Count(ctx context.Context, w Window) (int64, error) {
	q := w.values()
	q.Set("count", "true")
	var out struct {
		Count *int64 `json:"count"`
	}
	if _, err := c.getJSON(ctx, "count events", "/v1/events", q, &out); err != nil {
		return 0, err
	}
	if out.Count == nil {
		return 0, fmt.Errorf("keeptrusts count events: response has no count")
	}
	return *out.Count, nil
}

// GroupRow is one aggregate row: the group fields plus requests,
// input_tokens, output_tokens, cost (decimal string) and blocked.
type GroupRow map[string]any

// GroupBy aggregates the window by the given fields.
func (c *Client) GroupBy(ctx context.Context, w Window, fields ...string) ([]GroupRow, error) {
	q := w.values()
	q.Set("group_by", strings.Join(fields, ","))
	var rows []GroupRow
	_, err := c.getJSON(ctx, "group events", "/v1/events", q, &rows)
	return rows, err
}

// Gateway is a Keeptrusts gateway.
type Gateway struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Team        string `json:"team"`
	Environment string `json:"environment"`
}

// Gateways lists the organisation's gateways.
func (c *Client) Gateways(ctx context.Context) ([]Gateway, error) {
	var gws []Gateway
	_, err := c.getJSON(ctx, "list gateways", "/v1/gateways", nil, &gws)
	return gws, err
}
