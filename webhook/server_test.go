package webhook_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/webhook"
)

// serve runs rc behind NewServer on a loopback port.
func serve(t *testing.T, rc *webhook.Receiver, o webhook.ServerOptions) string {
	t.Helper()
	ln, err := webhook.Listen("127.0.0.1:0", 0, nil)
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

// postTo posts a signed body to the receiver at addr over a connection
// of its own, with its length declared or (chunked) not, and returns the
// status and the answer.
func postTo(t *testing.T, addr string, body []byte, chunked bool) (int, string) {
	t.Helper()
	code, answer, err := send(addr, body, chunked)
	if err != nil {
		t.Fatal(err)
	}
	return code, answer
}

func send(addr string, body []byte, chunked bool) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if chunked {
		req.ContentLength = -1
	}
	req.Header.Set("Keeptrusts-Signature", ktsim.Sign(secret, time.Now(), body))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer), err
}

// padded is a delivery of exactly n bytes.
func padded(id string, n int) []byte {
	d := delivery(id, `{"id":"e1"}`)
	return append(bytes.Repeat([]byte(" "), n-len(d)), d...)
}

// Senders that declare the largest body, send its headers and stall hold
// only the little they sent of the in-flight byte budget, so they cannot
// crowd out a real delivery, however much they declared.
func TestStalledSendersDoNotHoldTheirDeclaredBytes(t *testing.T) {
	const maxBody = 64 << 10
	// 4 × maxBody declared: the whole byte budget; 4 deliveries: every
	// slot, were a slot taken before the signature verified.
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{}, Logger: quiet(),
		MaxBody: maxBody, MaxInFlightBytes: 4 * maxBody, MaxInFlight: 4}
	addr := serve(t, rc, webhook.ServerOptions{})
	for range 4 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		// A valid-looking signature header with a current t passes the
		// header checks; the body it would sign never comes. The
		// receiver answers 100 Continue once it reads the body: it has
		// taken the delivery in.
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nKeeptrusts-Signature: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
			ktsim.Sign(secret, time.Now(), []byte("never sent")), maxBody)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("stalled sender: %q %v, want 100 Continue", line, err)
		}
	}
	if code, answer := postTo(t, addr, delivery("dlv_real", `{"id":"e1"}`), false); code != http.StatusAccepted {
		t.Fatalf("a real delivery beside 4 stalled ones: %d %q, want 202", code, answer)
	}
}

// A body of exactly MaxBody, its length declared or not, fits the
// smallest budget (MaxInFlightBytes = MaxBody): its buffer grows by
// doubling but stops at MaxBody. 100,000 is no power of two, so doubling
// alone would end at 131,072 bytes.
func TestBodyOfMaxBodyFitsTheSmallestBudget(t *testing.T) {
	const maxBody = 100_000
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{}, Logger: quiet(),
		MaxBody: maxBody, MaxInFlightBytes: maxBody}
	addr := serve(t, rc, webhook.ServerOptions{})
	for _, chunked := range []bool{true, false} {
		body := padded(fmt.Sprint("dlv_chunked_", chunked), maxBody)
		if code, answer := postTo(t, addr, body, chunked); code != http.StatusAccepted {
			t.Fatalf("chunked %v: %d %q, want 202", chunked, code, answer)
		}
	}
	if code, _ := postTo(t, addr, padded("dlv_over", maxBody+1), true); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a chunked body of MaxBody+1: %d, want 413", code)
	}
}

// Listen accepts at most maxConns connections at once: with both held, a
// third sender waits, unanswered, until one closes.
func TestListenBoundsConnections(t *testing.T) {
	addr := serveTwoConns(t)
	var held []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		held = append(held, conn)
	}
	codes := make(chan int, 1)
	go func() {
		code, _, err := send(addr, delivery("dlv_third", `{"id":"e1"}`), false)
		if err != nil {
			t.Error(err)
		}
		codes <- code
	}()
	select {
	case code := <-codes:
		t.Fatalf("a third connection was served (%d) while 2 of at most 2 were open", code)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close()
	select {
	case code := <-codes:
		if code != http.StatusAccepted {
			t.Fatalf("the third delivery: %d, want 202", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the third delivery was still waiting 5 s after a connection closed")
	}
}

// syncBuffer is a log destination the server's goroutines and the test
// share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Refusals are logged at most once a second, the next line counting
// those left out: a flood of unsigned requests cannot flood the log.
func TestRefusalLogIsRateLimited(t *testing.T) {
	var log syncBuffer
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{},
		Logger: slog.New(slog.NewTextHandler(&log, nil))}
	addr := serve(t, rc, webhook.ServerOptions{})
	unsigned := func() {
		resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unsigned: %d, want 401", resp.StatusCode)
		}
	}
	const flood = 50
	for range flood {
		unsigned()
	}
	time.Sleep(1100 * time.Millisecond)
	unsigned() // logged, with the count of those left out
	out := log.String()
	lines := strings.Count(out, "\n")
	suppressed := 0
	for _, m := range regexp.MustCompile(`suppressed=(\d+)`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		suppressed += n
	}
	// 2 lines when the flood takes under a second; a slow machine may
	// log one more.
	if lines < 2 || lines > 4 || lines+suppressed != flood+1 {
		t.Fatalf("%d refusals: %d log lines counting %d left out; want 2 to 4 lines accounting for all:\n%s",
			flood+1, lines, suppressed, out)
	}
}

// A signed but malformed delivery is answered 400 naming the field and
// the rule it breaks, and logged like any refusal.
func TestMalformedDeliveryIsRefusedAndLogged(t *testing.T) {
	for body, want := range map[string]string{
		`{`:                                   "delivery: want a JSON object",
		`{"type":"ping","events":[]}`:         "type: want events.batch",
		`{"type":"events.batch","events":{}}`: "events: want a JSON array",
		`{"type":"events.batch"}`:             "events: want a JSON array",
	} {
		var log syncBuffer
		rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{},
			Logger: slog.New(slog.NewTextHandler(&log, nil))}
		addr := serve(t, rc, webhook.ServerOptions{})
		code, answer := postTo(t, addr, []byte(body), false)
		if code != http.StatusBadRequest || answer != want+"\n" {
			t.Errorf("%s: %d %q, want 400 %q", body, code, answer, want)
		}
		if out := log.String(); !strings.Contains(out, "status=400") || !strings.Contains(out, fmt.Sprintf("answer=%q", want)) {
			t.Errorf("%s: logged %q, want a refusal line with status=400 answer=%q", body, out, want)
		}
	}
}

// Senders without the secret cannot hold the connections a delivery
// needs: with both of at most 2 connections carrying a keep-alive client
// that posts unsigned every 100 ms (each request restarting the idle
// timeout), a signed delivery is still answered within 2 s, because
// every refusal closes its connection.
func TestUnsignedKeepAliveClientsDoNotHoldTheConnections(t *testing.T) {
	addr := serveTwoConns(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	answered := make(chan struct{}, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			first := true
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				resp, err := c.Post("http://"+addr+"/", "application/json", nil)
				if err != nil {
					continue // waiting for a slot past its timeout: try again
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("unsigned: %d, want 401", resp.StatusCode)
				}
				if first {
					answered <- struct{}{}
					first = false
				}
			}
		}()
	}
	for range 2 {
		<-answered // both clients hold a connection
	}
	errs := make(chan error, 1) // buffered: the sender may outlive a failed test
	go func() {
		code, _, err := send(addr, delivery("dlv_crowded", `{"id":"e1"}`), false)
		if err == nil && code != http.StatusAccepted {
			err = fmt.Errorf("status %d, want 202", code)
		}
		errs <- err
	}()
	select {
	case err := <-errs:
		if err != nil {
			t.Fatalf("the signed delivery: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the signed delivery was not answered within 2 s beside 2 unsigned keep-alive clients")
	}
}

// A full connection cap is logged, not a silent stall, and at most once
// a second however often it fills: here 20 connections one after
// another each fill the cap of 1.
func TestListenLogsTheCapReached(t *testing.T) {
	var log syncBuffer
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{}, Logger: quiet()}
	ln, err := webhook.Listen("127.0.0.1:0", 1, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := webhook.NewServer(rc, webhook.ServerOptions{})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for range 20 {
		resp, err := http.Post("http://"+ln.Addr().String()+"/", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	out := log.String()
	if !strings.Contains(out, "webhook connections at their cap") || !strings.Contains(out, "max_conns=1") {
		t.Fatalf("logged %q, want the cap of 1 reported", out)
	}
	// 1 line when the 20 take under a second; a slow machine may log more.
	if lines := strings.Count(out, "\n"); lines > 3 {
		t.Fatalf("the cap was logged %d times, want at most one line a second:\n%s", lines, out)
	}
}

// serveTwoConns serves a receiver on a listener of at most 2 connections
// and returns its address.
func serveTwoConns(t *testing.T) string {
	t.Helper()
	rc := &webhook.Receiver{Secret: secret, Store: &memStore{}, Batches: &batches{}, Logger: quiet()}
	ln, err := webhook.Listen("127.0.0.1:0", 2, quiet())
	if err != nil {
		t.Fatal(err)
	}
	srv := webhook.NewServer(rc, webhook.ServerOptions{})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
