package webhook

import (
	"log/slog"
	"net/http"
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
	// DefaultIdleTimeout bounds a kept-alive connection between requests.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes bounds the request headers: a delivery's are a
	// few hundred bytes; proxies add some.
	DefaultMaxHeaderBytes = 16 << 10
)

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
// them. Its WriteTimeout covers reading the body, staging and answering.
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
