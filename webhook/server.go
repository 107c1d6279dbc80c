package webhook

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
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
	// the bound waits, unaccepted, until one closes, and Listen logs that
	// the bound is reached. A connection carries one refused request at
	// most (the refusal closes it), so one without a verified delivery
	// closes within NewServer's WriteTimeout (25 s with the defaults:
	// reading, staging, answering) and net/http's 0.5 s wait before
	// closing on unread body; only verified deliveries keep theirs open,
	// for IdleTimeout after each.
	DefaultMaxConns = 1024
)

// Listen listens on TCP addr and accepts at most maxConns connections at
// once (zero or less: DefaultMaxConns), the bound NewServer's timeouts
// alone do not give. Whenever all maxConns are open it warns on logger
// (nil: slog.Default()) that further connections wait, at most once
// every refusalLogEvery: a full cap is otherwise a silent stall.
func Listen(addr string, maxConns int, logger *slog.Logger) (net.Listener, error) {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if logger == nil {
		logger = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err // it names the address; callers name the setting
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, maxConns), closed: make(chan struct{}), log: logger}, nil
}

// limitListener is netutil.LimitListener that also says when it is full.
type limitListener struct {
	net.Listener
	slots     chan struct{} // one per open connection
	closed    chan struct{}
	closeOnce sync.Once
	log       *slog.Logger
	full      logLimit
}

// Accept takes a slot before accepting, so that past the cap connections
// wait in the kernel's queue, not in this process.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if suppressed, ok := l.full.allow(); ok {
			l.log.Warn("webhook connections at their cap; further connections wait, unaccepted, until one closes",
				"max_conns", cap(l.slots), "suppressed", suppressed)
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn gives its slot back when it is closed, once.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
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
// so that no request holds a connection, a goroutine or memory beyond
// them, and a refused request gives its connection back (see
// DefaultMaxConns); serve it on Listen, which bounds the connections.
// Its WriteTimeout covers reading the body, staging and answering.
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
