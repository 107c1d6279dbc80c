package schemas

import (
	"fmt"
	"time"
)

// FieldError says which field of a record broke which rule. It is the
// reason a record is quarantined.
type FieldError struct {
	Field string
	Rule  string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("field %s: %s", e.Field, e.Rule)
}

func fieldErr(field, rule string) *FieldError { return &FieldError{Field: field, Rule: rule} }

// GatewaySet answers whether a gateway id is known to the organisation.
type GatewaySet map[string]bool

// Validate applies the contract's loader rules to a decoded event and
// returns the first broken rule as a *FieldError, or nil. A nil gateways
// set skips the known-gateway rule (used when the caller has no list).
func Validate(ev *Event, gateways GatewaySet) error {
	for _, f := range requiredFields {
		if ev.present&f.bit == 0 {
			return fieldErr(f.name, "is required")
		}
	}
	if !isUUID(ev.ID) {
		return fieldErr("id", "must be a UUID")
	}
	if !isUUID(ev.GatewayID) {
		return fieldErr("gateway_id", "must be a UUID")
	}
	if gateways != nil && !gateways[ev.GatewayID] {
		return fieldErr("gateway_id", "must be a known gateway")
	}
	for _, s := range []struct{ name, v string }{{"user", ev.User}, {"provider", ev.Provider}, {"model", ev.Model}} {
		if s.v == "" {
			return fieldErr(s.name, "must not be empty")
		}
	}
	if !InTimestampWindow(ev.Timestamp) {
		return fieldErr("timestamp", timestampRule)
	}
	if !ev.Decision.Valid() {
		return fieldErr("decision", "must be one of allow, block, redact, escalate")
	}
	if ev.Cost < 0 {
		return fieldErr("cost", "must be >= 0")
	}
	if ev.LatencyMs < 0 {
		return fieldErr("latency_ms", "must be a non-negative integer")
	}
	if ev.InputTokens < 0 {
		return fieldErr("input_tokens", "must be a non-negative integer")
	}
	if ev.OutputTokens < 0 {
		return fieldErr("output_tokens", "must be a non-negative integer")
	}
	return nil
}

// The window of timestamps an event may carry: [2000-01-01, 2100-01-01)
// UTC. Fixed, not relative to now, so validation is deterministic (a
// replay judges a record as the first run did). Outside it a timestamp is
// a producer's bug (year 1 is Go's and many languages' zero time, 9999 a
// "never"); inside it date pruning and dim_date stay bounded.
var (
	MinTimestamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTimestamp = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) // exclusive
)

const timestampRule = "must be from 2000-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z"

// InTimestampWindow reports whether t is in [MinTimestamp, MaxTimestamp).
func InTimestampWindow(t time.Time) bool {
	return !t.Before(MinTimestamp) && t.Before(MaxTimestamp)
}

// ParseTimestamp accepts RFC 3339 with any UTC offset and fractional
// seconds, and the ISO 8601 basic offset (+0100) some producers emit.
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return t.UTC(), nil
	}
	if t2, err2 := time.Parse("2006-01-02T15:04:05.999999999Z0700", s); err2 == nil {
		return t2.UTC(), nil
	}
	return time.Time{}, err
}

// hexValue maps a byte to its hex digit value, or 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

// ParseUUID returns the 16 bytes of an 8-4-4-4-12 hex UUID; the bytes
// serve as a compact dedup key.
func ParseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
		}
		hi, lo := hexValue[s[i]], hexValue[s[i+1]]
		if hi|lo == 0xff || hi > 15 || lo > 15 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
	}
	return u, true
}

func isUUID(s string) bool {
	_, ok := ParseUUID(s)
	return ok
}
