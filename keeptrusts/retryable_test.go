package keeptrusts_test

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/ktpipe/ktpipe/keeptrusts"
)

// A token an HTTP header cannot carry as is (a Kubernetes secret made
// from a file ends in "\n") is refused once, at New, without being echoed:
// sent, every request would fail as if the network had.
func TestNewRefusesATokenAHeaderCannotCarry(t *testing.T) {
	const secret = "s3cret-token-value"
	for _, tok := range []string{secret + "\n", secret + "\r\n", "s3cret\x00token", secret + " ", "\t" + secret} {
		_, err := keeptrusts.New("https://api.keeptrusts.com", tok)
		if err == nil || !strings.Contains(err.Error(), "keeptrusts token: ") {
			t.Fatalf("token %q: err %v, want it refused", tok, err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error leaks the token: %v", err)
		}
	}
}

// A server certificate that fails verification fails the same way on
// every attempt; every other transport failure may heal.
func TestRetryableTransportErrors(t *testing.T) {
	wrap := func(err error) error {
		return fmt.Errorf("keeptrusts list exports: %w", &url.Error{Op: "Get", URL: "https://api.keeptrusts.com/v1/exports", Err: err})
	}
	syscallErr := func(op string, errno syscall.Errno) error {
		return &net.OpError{Op: op, Net: "tcp", Err: &os.SyscallError{Syscall: op, Err: errno}}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"certificate verification, any cause", wrap(&tls.CertificateVerificationError{Err: x509.ConstraintViolationError{}}), false},
		{"unknown authority", wrap(x509.UnknownAuthorityError{}), false},
		{"wrong host name", wrap(x509.HostnameError{Certificate: &x509.Certificate{DNSNames: []string{"example.com"}}, Host: "api.keeptrusts.com"}), false},
		{"expired certificate", wrap(x509.CertificateInvalidError{Reason: x509.Expired}), false},
		{"connection reset", wrap(syscallErr("read", syscall.ECONNRESET)), true},
		{"connection refused", wrap(syscallErr("dial", syscall.ECONNREFUSED)), true},
		{"EOF", wrap(io.EOF), true},
		{"unexpected EOF", wrap(io.ErrUnexpectedEOF), true},
		{"dial timeout", wrap(&net.DNSError{Err: "i/o timeout", IsTimeout: true}), true},
		{"not TLS (kept as before)", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), true},
	}
	for _, tt := range tests {
		if got := keeptrusts.Retryable(tt.err); got != tt.want {
			t.Errorf("%s: Retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// The same against a real TLS server: a certificate nobody trusts, and a
// trusted one for another host name, are not retried.
func TestUntrustedServerIsNotRetryable(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("[]"))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for name, c := range map[string]*keeptrusts.Client{
		"unknown authority": client(t, srv.URL),
		"wrong host name":   client(t, "https://localhost:"+port, keeptrusts.WithHTTPClient(srv.Client())),
	} {
		_, err := c.ListExports(guard(t), "", 0)
		if err == nil || keeptrusts.Retryable(err) {
			t.Errorf("%s: err %v, want a non-retryable certificate error", name, err)
		}
	}
	// The server itself answers whoever trusts its certificate.
	if _, err := client(t, srv.URL, keeptrusts.WithHTTPClient(srv.Client())).ListExports(guard(t), "", 0); err != nil {
		t.Fatal(err)
	}
}

// rawResponse answers with head and body as they are, then closes the
// connection: a body whose end only the close marks.
func rawResponse(head, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		buf.WriteString(head + "\r\nConnection: close\r\n\r\n" + body)
		buf.Flush()
	}
}

// gzipped is s compressed: its trailer marks its end.
func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

// A body that arrived whole and does not decode fails the same way every
// time: not retried, and the error says what did not decode.
func TestWholeBodyThatDoesNotDecodeIsNotRetried(t *testing.T) {
	badRowCount := `{"id":"exp_1","status":"completed","row_count":"x"}`
	tests := []struct {
		name, want string
		h          http.HandlerFunc
	}{
		{"row_count a string", "row_count", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(badRowCount)) }},
		{"not JSON", "invalid character '<'", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>oops</html>")) }},
		{"row_count a string, end marked by the close", "row_count", rawResponse("HTTP/1.1 200 OK", badRowCount)},
		{"not JSON, gzip without a length", "invalid character '<'", rawResponse("HTTP/1.1 200 OK\r\nContent-Encoding: gzip", gzipped("<html>oops</html>"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, tt.h) // CreateExport takes a 200 too (a replay)
			_, err := c.GetExport(guard(t), "exp_1")
			_, _, cerr := c.CreateExport(guard(t), keeptrusts.ExportRequest{Format: "ndjson"}, "k")
			for _, err := range []error{err, cerr} {
				var ae *keeptrusts.APIError
				if !errors.As(err, &ae) || ae.Retryable() || keeptrusts.Retryable(err) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err %v, want a non-retryable *APIError naming %q", err, tt.want)
				}
				if strings.Contains(err.Error(), token) {
					t.Fatalf("error leaks the token: %v", err)
				}
			}
		})
	}
}

// A body cut short by a closed connection may arrive whole next time.
func TestBodyCutShortIsRetried(t *testing.T) {
	part := `{"id":"exp_1","sta`
	for name, h := range map[string]http.HandlerFunc{
		"Content-Length says more": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte(part))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // closes the connection
		},
		"no length, the close ends it": rawResponse("HTTP/1.1 200 OK", part),
	} {
		_, err := serve(t, h).GetExport(guard(t), "exp_1")
		if err == nil || !keeptrusts.Retryable(err) {
			t.Errorf("%s: err %v, want it retryable", name, err)
		}
	}
}

// A page cut short where nothing marks its end is retried, not handed
// on as a (final) malformed page; a whole unframed page is served.
func TestPageCutShortIsRetried(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Next-Cursor: c1\r\nX-Has-More: true"
	_, err := serve(t, rawResponse(head, `[{"id":"e1","times`)).ListEvents(guard(t), keeptrusts.PageQuery{})
	if err == nil || !keeptrusts.Retryable(err) {
		t.Errorf("page cut short: err %v, want it retryable", err)
	}
	page, err := serve(t, rawResponse(head, `[{"id":"e1"}]`)).ListEvents(guard(t), keeptrusts.PageQuery{})
	if err != nil || string(page.Body) != `[{"id":"e1"}]` || page.NextCursor != "c1" {
		t.Errorf("whole unframed page: %+v, %v", page, err)
	}
}

// HTTP/2 frames mark a body's end even without a Content-Length.
func TestWholeHTTP2BodyThatDoesNotDecodeIsNotRetried(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // headers out before the body: no Content-Length
		w.Write([]byte("<html>oops</html>"))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, err := client(t, srv.URL, keeptrusts.WithHTTPClient(srv.Client())).GetExport(guard(t), "exp_1")
	if err == nil || keeptrusts.Retryable(err) || !strings.Contains(err.Error(), "invalid character '<'") {
		t.Fatalf("err %v, want a non-retryable error naming what did not decode", err)
	}
}
