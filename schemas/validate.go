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
	if err := validateBeforeGateway(ev); err != nil {
		return err
	}
	if rule := gatewayRule(ev.GatewayID, gateways); rule != "" {
		return fieldErr("gateway_id", rule)
	}
	return validateAfterGateway(ev)
}

// Validator is Validate for one gateway set, remembering its verdicts on
// the gateway ids it saw last: a load's events come from a few gateways,
// and parsing and looking up the same id for every event was a fifth of
// validation. The set must not change while the Validator is used. Not
// safe for concurrent use.
type Validator struct {
	gateways GatewaySet
	memo     [64]struct{ id, rule string } // direct-mapped by gatewaySlot
}

// NewValidator returns a Validator for gateways (nil: any gateway id
// that is a UUID).
func NewValidator(gateways GatewaySet) *Validator { return &Validator{gateways: gateways} }

// Validate is Validate(ev, gateways).
func (v *Validator) Validate(ev *Event) error {
	if err := validateBeforeGateway(ev); err != nil {
		return err
	}
	id := ev.GatewayID
	var rule string
	if len(id) < 2 {
		rule = gatewayRule(id, v.gateways)
	} else if m := &v.memo[(id[len(id)-1]^id[len(id)-2]*7^id[0]*13)&63]; m.id == id && m.id != "" {
		rule = m.rule // interned ids compare by pointer, most often
	} else {
		rule = gatewayRule(id, v.gateways)
		m.id, m.rule = id, rule
	}
	if rule != "" {
		return fieldErr("gateway_id", rule)
	}
	return validateAfterGateway(ev)
}

// gatewayRule returns the rule a gateway id breaks, or "".
func gatewayRule(id string, gateways GatewaySet) string {
	if !isUUID(id) {
		return "must be a UUID"
	}
	if gateways != nil && !gateways[id] {
		return "must be a known gateway"
	}
	return ""
}

// validateBeforeGateway and validateAfterGateway are Validate's rules in
// its order, on either side of the gateway's.
func validateBeforeGateway(ev *Event) error {
	for _, f := range requiredFields {
		if ev.present&f.bit == 0 {
			return fieldErr(f.name, "is required")
		}
	}
	if _, ok := ev.UUID(); !ok {
		return fieldErr("id", "must be a UUID")
	}
	return nil
}

func validateAfterGateway(ev *Event) error {
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
func ParseUUID(s string) (u [16]byte, ok bool) { return parseUUID(s) }

// parseUUID is ParseUUID for text in a string or in bytes (the scanner's
// buffer), so both paths share one definition of a UUID.
func parseUUID[T string | []byte](s T) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	// The hex pairs of each group, by their offsets; OR-ing the digits'
	// values finds a bad one (0xff) once, at the end.
	var bad byte
	pair := func(j, i int) {
		hi, lo := hexValue[s[i]], hexValue[s[i+1]]
		bad |= hi | lo
		u[j] = hi<<4 | lo&0xf
	}
	pair(0, 0)
	pair(1, 2)
	pair(2, 4)
	pair(3, 6)
	pair(4, 9)
	pair(5, 11)
	pair(6, 14)
	pair(7, 16)
	pair(8, 19)
	pair(9, 21)
	pair(10, 24)
	pair(11, 26)
	pair(12, 28)
	pair(13, 30)
	pair(14, 32)
	pair(15, 34)
	if bad > 15 {
		return [16]byte{}, false
	}
	return u, true
}

func isUUID(s string) bool {
	_, ok := ParseUUID(s)
	return ok
}
