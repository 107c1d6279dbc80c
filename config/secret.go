package config

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// redacted is what every encoder shows instead of a Secret.
const redacted = "[redacted]"

// Secret holds a credential. Every way Go code commonly turns a value into
// text shows [redacted] instead: fmt (any verb, also inside structs),
// encoding/json, encoding/xml and other TextMarshaler users, and log/slog
// (JSON and text handlers). Only Reveal returns the credential.
type Secret string

// Reveal returns the credential itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter, so no verb (%v %+v %#v %s %q %x %X %d
// ...) formats the underlying string.
func (Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		io.WriteString(f, strconv.Quote(redacted))
		return
	}
	io.WriteString(f, redacted)
}

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(redacted)), nil }

// MarshalText implements encoding.TextMarshaler (encoding/xml, slog's
// text handler, YAML and TOML encoders use it).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }
