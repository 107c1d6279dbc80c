package webhook

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Defaults of ServerOptions.
const (
	// DefaultReadTimeout bounds reading one request, body included: the
	// sender gives up after 10 s, so a request still arriving after that
	// is one nobody waits for; a connection that stops mid-body is closed.
	DefaultReadTimeout = 10 * time.Second
	// DefaultReadHeaderTimeout bounds reading the headers alone.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultIdleTimeout bounds a kept-alive connection between requests:
	// a busy sender reuses its connections well within 15 s, and an idle
	// one (anyone's, after any answer) gives its place among
	// DefaultMaxConns back soon.
	DefaultIdleTimeout = 15 * time.Second
	// DefaultMaxHeaderBytes bounds the request headers: a delivery's are a
	// few hundred bytes; proxies add some.
	DefaultMaxHeaderBytes = 16 << 10
	// DefaultMaxConns bounds the connections open at once, whoever opens
	// them: each costs a goroutine, its buffers and up to 16 KiB of
	// headers, about 40 KiB, so 1,024 hold about 40 MiB and a file
	// descriptor each. The sender needs a handful; 1,024 is also the most
	// deliveries KTPIPE_WEBHOOK_MAX_IN_FLIGHT allows. A connection past
	// the bound waits, unaccepted, until one closes, which NewServer's
	// timeouts bound (25 s with the defaults: reading, staging, answering).
	DefaultMaxConns = 1024
)

// Listen listens on TCP addr and accepts at most maxConns connections at
// once (zero or less: DefaultMaxConns), the bound NewServer's timeouts
// alone do not give.
func Listen(addr string, maxConns int) (net.Listener, error) {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err // it names the address; callers name the setting
	}
	return netutil.LimitListener(ln, maxConns), nil
}

// ServerOptions bound time and header bytes per connection; zero fields
// take the defaults above.
type ServerOptions struct {
	ReadTimeout       time.Duration
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// NewServer returns an http.Server that serves rc with every bound set,
// so that no sender can hold a connection, a goroutine or memory beyond
// them; serve it on Listen, which bounds the connections. Its
// WriteTimeout covers reading the body, staging and answering.
func NewServer(rc *Receiver, o ServerOptions) *http.Server {
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.ReadHeaderTimeout <= 0 || o.ReadHeaderTimeout > o.ReadTimeout {
		o.ReadHeaderTimeout = min(DefaultReadHeaderTimeout, o.ReadTimeout)
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           rc,
		ReadTimeout:       o.ReadTimeout,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		WriteTimeout:      o.ReadTimeout + stageTimeout + 5*time.Second,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(rc.log().Handler(), slog.LevelWarn),
	}
}
