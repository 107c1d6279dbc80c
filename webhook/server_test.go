package webhook_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/webhook"
)

// serve runs rc behind NewServer on a loopback port.
func serve(t *testing.T, rc *webhook.Receiver, o webhook.ServerOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := webhook.NewServer(rc, o)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A sender that stops mid-body (or mid-headers) is cut off after
// ReadTimeout: its connection is closed, not held. The test waits up to
// 5 s, far beyond the 300 ms timeout and far below the 10 s default.
func TestStalledSenderIsClosedWithinTheReadTimeout(t *testing.T) {
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{}, Logger: quiet()}
	addr := serve(t, rc, webhook.ServerOptions{ReadTimeout: 300 * time.Millisecond})
	body := delivery("dlv_stall", `{"id":"e1"}`)
	for name, sent := range map[string]string{
		"mid-body": fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nKeeptrusts-Signature: %s\r\nContent-Length: %d\r\n\r\n%s",
			ktsim.Sign(secret, time.Now(), body), len(body), body[:10]),
		"mid-headers": "POST / HTTP/1.1\r\nHost: x\r\nKeeptrusts-Sig",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, sent); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.Copy(io.Discard, conn) // returns at EOF: the server closed it
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the stalled connection was still open after 5 s")
			}
		})
	}
}

// The server refuses headers beyond MaxHeaderBytes before the handler
// runs.
func TestServerBoundsHeaderBytes(t *testing.T) {
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{}, Logger: quiet()}
	addr := serve(t, rc, webhook.ServerOptions{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nKeeptrusts-Delivery: %s\r\nContent-Length: 0\r\n\r\n", strings.Repeat("d", 64<<10))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}
