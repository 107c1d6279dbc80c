package keeptrusts_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/keeptrusts"
)

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, url string, opts ...keeptrusts.Option) *keeptrusts.Client {
	t.Helper()
	c, err := keeptrusts.New(url, token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// guard bounds a test that would otherwise hang on the bug it tests.
func guard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func timeoutErr(t *testing.T, err error, bound string) *keeptrusts.TimeoutError {
	t.Helper()
	var te *keeptrusts.TimeoutError
	if !errors.As(err, &te) || te.Bound != bound {
		t.Fatalf("err %v, want a %s *TimeoutError", err, bound)
	}
	if !keeptrusts.Retryable(err) {
		t.Fatalf("err %v is not retryable", err)
	}
	return te
}

// A body that stalls mid-way ends the call within the idle-read bound, and
// the connection is closed (the server sees its request end).
func TestIdleReadBoundEndsAStalledBody(t *testing.T) {
	serverSawClose := make(chan struct{})
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[{"id":"gw-1","name":`))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // never finishes the body
		close(serverSawClose)
	})
	c := client(t, srv.URL, keeptrusts.WithTimeouts(keeptrusts.Timeouts{IdleRead: 100 * time.Millisecond}))
	_, err := c.Gateways(guard(t))
	te := timeoutErr(t, err, "idle read")
	if te.Limit != 100*time.Millisecond || !strings.Contains(err.Error(), "idle-read timeout") || !strings.Contains(err.Error(), "100ms") {
		t.Fatalf("error does not name its bound: %v", err)
	}
	select {
	case <-serverSawClose:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled connection was not closed")
	}
}

// A download whose body stalls is resumed and, stalling every time, ends
// with the idle-read error instead of pinning the activity.
func TestIdleReadBoundEndsAStalledDownload(t *testing.T) {
	var requests atomic.Int32
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	c := client(t, srv.URL, keeptrusts.WithTimeouts(keeptrusts.Timeouts{IdleRead: 50 * time.Millisecond}))
	f, err := os.Create(filepath.Join(t.TempDir(), "export.part"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(1000)
	err = c.Download(guard(t), keeptrusts.Export{ID: "exp-1", SizeBytes: &size}, f, keeptrusts.DownloadOptions{MaxResumes: 2})
	timeoutErr(t, err, "idle read")
	if n := requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3 (the first and two resumes)", n)
	}
}

// A body that trickles a byte at a time never goes idle, but a JSON call
// still ends at the call bound.
func TestCallBoundEndsATricklingBody(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("["))
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
				w.Write([]byte(" "))
				w.(http.Flusher).Flush()
			}
		}
	})
	c := client(t, srv.URL, keeptrusts.WithTimeouts(keeptrusts.Timeouts{IdleRead: 5 * time.Second, Call: 200 * time.Millisecond}))
	_, err := c.ListEvents(guard(t), keeptrusts.PageQuery{})
	timeoutErr(t, err, "call")
	if !strings.Contains(err.Error(), "call timeout") || !strings.Contains(err.Error(), "200ms") {
		t.Fatalf("error does not name its bound: %v", err)
	}
}

// The client's own transport bounds the wait for response headers.
func TestResponseHeaderBound(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := client(t, srv.URL, keeptrusts.WithTimeouts(keeptrusts.Timeouts{Response: 50 * time.Millisecond, Call: time.Minute}))
	_, err := c.Gateways(guard(t))
	if err == nil || !keeptrusts.Retryable(err) || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("err %v, want a retryable response header timeout", err)
	}
}

func TestRetryAfterIsClamped(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"9000000000", keeptrusts.MaxRetryAfter},
		{"99999999999999999999999999", keeptrusts.MaxRetryAfter},
		{"Fri, 31 Dec 9999 23:59:59 GMT", keeptrusts.MaxRetryAfter},
		{"7", 7 * time.Second},
		{"0", time.Second}, // a 429 waits at least a second
		{"Mon, 01 Jan 2001 00:00:00 GMT", time.Second},
		{"-5", time.Second},
		{"soon", time.Second},
	}
	for _, tt := range tests {
		srv := server(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", tt.header)
			w.WriteHeader(http.StatusTooManyRequests)
		})
		_, err := client(t, srv.URL).Gateways(guard(t))
		if got := keeptrusts.RetryAfter(err); got != tt.want {
			t.Errorf("Retry-After %q: waits %v, want %v (err %v)", tt.header, got, tt.want, err)
		}
	}
	if keeptrusts.MaxRetryAfter != 5*time.Minute {
		t.Errorf("MaxRetryAfter %v; the README states 5m", keeptrusts.MaxRetryAfter)
	}
}

func TestResponseBodiesAreCapped(t *testing.T) {
	const limit = 1024
	body := "[" + strings.Repeat(`{"id":"x"},`, 200) + `{"id":"x"}]`
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Next-Cursor", "c1")
		if r.URL.Query().Get("limit") == "2" { // endless: only a cap on what is read ends it
			w.Write([]byte("["))
			for r.Context().Err() == nil {
				if _, err := w.Write([]byte(strings.Repeat(" ", 4096))); err != nil {
					return
				}
			}
			return
		}
		if r.URL.Query().Get("limit") == "1" {
			fmt.Fprint(w, `[`+strings.Repeat(" ", limit-len(`[{"id":"x"}]`))+`{"id":"x"}]`) // exactly the limit
			return
		}
		fmt.Fprint(w, body)
	})
	c := client(t, srv.URL, keeptrusts.WithMaxBodyBytes(limit))
	if _, err := c.ListEvents(guard(t), keeptrusts.PageQuery{Limit: 1}); err != nil {
		t.Fatalf("a page of exactly the limit: %v", err)
	}
	for name, call := range map[string]func() error{
		"list events":   func() error { _, err := c.ListEvents(guard(t), keeptrusts.PageQuery{}); return err },
		"list events ":  func() error { _, err := c.ListEvents(guard(t), keeptrusts.PageQuery{Limit: 2}); return err },
		"list gateways": func() error { _, err := c.Gateways(guard(t)); return err },
		"create export": func() error {
			_, _, err := c.CreateExport(guard(t), keeptrusts.ExportRequest{Format: "ndjson"}, "k")
			return err
		},
	} {
		err := call()
		var ae *keeptrusts.APIError
		if !errors.As(err, &ae) || ae.Code != "response_too_large" || keeptrusts.Retryable(err) ||
			!strings.Contains(err.Error(), "1024-byte limit") || !strings.Contains(err.Error(), strings.TrimSpace(name)) {
			t.Errorf("%s: err %v, want a non-retryable response_too_large naming the limit", name, err)
		}
	}
}

// A redirect to the same host on another port must not get the token;
// one within the base URL's origin is followed.
func TestRedirectsStayWithinTheOrigin(t *testing.T) {
	var elsewhere atomic.Int32
	other := server(t, func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the other port received the token")
		}
		fmt.Fprint(w, `[]`)
	})
	var sameOriginAuth atomic.Value
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/gateways":
			http.Redirect(w, r, other.URL+"/v1/gateways", http.StatusFound)
		case "/v1/exports":
			http.Redirect(w, r, "/v1/exports-moved", http.StatusTemporaryRedirect)
		case "/v1/exports-moved":
			sameOriginAuth.Store(r.Header.Get("Authorization"))
			fmt.Fprint(w, `[]`)
		}
	})
	c := client(t, srv.URL)
	_, err := c.Gateways(guard(t))
	var ae *keeptrusts.APIError
	if !errors.As(err, &ae) || ae.Code != "redirect_refused" || keeptrusts.Retryable(err) || !strings.Contains(err.Error(), "redirect to http://127.0.0.1:") {
		t.Fatalf("err %v, want a non-retryable redirect_refused", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("error carries the token")
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the other port received %d requests", n)
	}
	if _, err := c.ListExports(guard(t), "", 0); err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
	if got, _ := sameOriginAuth.Load().(string); got != "Bearer "+token {
		t.Fatalf("same-origin redirect lost the token: %q", got)
	}
}

func TestClientDoesNotPrintItsToken(t *testing.T) {
	c := client(t, "http://127.0.0.1:1")
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%+v", *c)} {
		if strings.Contains(s, token) {
			t.Fatalf("client prints its token: %s", s)
		}
	}
}
