package schemas

import (
	"unsafe"

	"github.com/valyala/fastjson"
)

// Parser turns one JSON object into an Event. It reuses its buffers, so a
// Parser serves one goroutine.
type Parser struct {
	p fastjson.Parser
	interned
	ids   arena
	ascii bool // fastParse: every string the encoder writes was ASCII so far
}

// arena makes strings of the bytes of many event ids out of one
// allocation: an id is a new string per event (unlike the interned
// fields), and allocating each apart was a tenth of the scanner's time
// with the collector's share. Bytes are only ever appended to a block, so
// a string made of them never changes; a block is freed once no string
// made of it is left.
type arena struct{ block []byte }

const (
	arenaBlock = 16 << 10
	arenaMax   = 256 // longer strings get their own allocation
)

func (a *arena) string(b []byte) string {
	if len(b) == 0 || len(b) > arenaMax {
		return string(b)
	}
	if cap(a.block)-len(a.block) < len(b) {
		a.block = make([]byte, 0, arenaBlock)
	}
	start := len(a.block)
	a.block = append(a.block, b...)
	return unsafe.String(&a.block[start], len(b))
}

// interned maps the low-cardinality strings of events (gateways, users,
// providers, models, decisions, policy names) to one shared copy, so
// decoding them allocates nothing after the first time. It stops growing
// at maxInterned entries, so a high-cardinality field cannot bloat it.
//
// In front of the map sits a small direct-mapped cache indexed by a
// cheap hash of the bytes: most lookups hit it and cost one comparison
// instead of a map's hashing.
type interned struct {
	m     map[string]string
	cache [256]string
}

const maxInterned = 1 << 14

func (in *interned) get(b []byte) string {
	var h byte
	if len(b) > 0 {
		h = byte(len(b)) ^ b[0]*31 ^ b[len(b)-1]*7 ^ b[len(b)/2]*3
	}
	if c := in.cache[h]; c == string(b) { // no allocation for the comparison
		return c
	}
	if in.m == nil {
		in.m = make(map[string]string, 256)
	}
	s, ok := in.m[string(b)] // no allocation for the lookup
	if !ok {
		s = string(b)
		if len(in.m) < maxInterned {
			in.m[s] = s
		}
	}
	in.cache[h] = s
	return s
}

// Parse decodes raw (one JSON object) into ev. Type errors (a string where
// a number belongs, a fraction in a token count) come back as *FieldError;
// value rules are Validate's.
func (ps *Parser) Parse(raw []byte, ev *Event) error {
	ev.reset()
	v, err := ps.p.ParseBytes(raw)
	if err != nil {
		return fieldErr("(record)", "must be a JSON object: "+err.Error())
	}
	return ps.fill(v, ev)
}

// fill sets ev from a parsed JSON value (ev already reset).
func (ps *Parser) fill(v *fastjson.Value, ev *Event) error {
	obj, err := v.Object()
	if err != nil {
		return fieldErr("(record)", "must be a JSON object")
	}
	var ferr *FieldError
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if ferr != nil {
			return
		}
		// Only an unknown field's name costs an allocation.
		name := internFieldName(key)
		if name == "" {
			name = string(key)
		}
		ferr = ps.setJSONField(ev, name, v)
	})
	if ferr != nil {
		return ferr
	}
	return nil
}

func (ps *Parser) setJSONField(ev *Event, key string, v *fastjson.Value) *FieldError {
	if v.Type() == fastjson.TypeNull {
		// A null required field counts as missing; null optional fields
		// are simply empty.
		if key == "metadata" || key == "policies_evaluated" || key == "policies_triggered" {
			return nil
		}
		if _, known := fieldBit(key); known {
			return nil
		}
		ev.Extra = append(ev.Extra, Field{Name: key, Value: v.MarshalTo(nil)})
		return nil
	}
	switch key {
	case "id", "timestamp":
		b, err := v.StringBytes()
		if err != nil {
			return fieldErr(key, "must be a string")
		}
		return setStringField(ev, key, string(b))
	case "gateway_id", "user", "provider", "model", "decision":
		b, err := v.StringBytes()
		if err != nil {
			return fieldErr(key, "must be a string")
		}
		return setStringField(ev, key, ps.interned.get(b))
	case "policies_evaluated", "policies_triggered":
		arr, err := v.Array()
		if err != nil {
			return fieldErr(key, "must be an array of strings")
		}
		for _, item := range arr {
			b, err := item.StringBytes()
			if err != nil {
				return fieldErr(key, "must be an array of strings")
			}
			if key == "policies_evaluated" {
				ev.PoliciesEvaluated = append(ev.PoliciesEvaluated, ps.interned.get(b))
			} else {
				ev.PoliciesTriggered = append(ev.PoliciesTriggered, ps.interned.get(b))
			}
		}
	case "latency_ms", "input_tokens", "output_tokens":
		if v.Type() != fastjson.TypeNumber {
			return fieldErr(key, "must be an integer")
		}
		n, err := v.Int64()
		if err != nil {
			return fieldErr(key, "must be an integer")
		}
		setIntField(ev, key, n)
	case "cost":
		var d Decimal
		var err error
		switch v.Type() {
		case fastjson.TypeString:
			d, err = ParseDecimal(string(v.GetStringBytes()))
		case fastjson.TypeNumber:
			d, err = parseJSONNumberDecimal(string(v.MarshalTo(nil)))
		default:
			return fieldErr("cost", "must be a decimal string or number")
		}
		if err != nil {
			return fieldErr("cost", err.Error())
		}
		ev.Cost = d
		ev.present |= fCost
	case "metadata":
		if v.Type() != fastjson.TypeObject {
			return fieldErr("metadata", "must be a JSON object or null")
		}
		ev.Metadata = v.MarshalTo(ev.Metadata[:0])
	default:
		ev.Extra = append(ev.Extra, Field{Name: key, Value: v.MarshalTo(nil)})
	}
	return nil
}

// setStringField stores one of the contract's string fields.
func setStringField(ev *Event, key, s string) *FieldError {
	switch key {
	case "id":
		ev.ID = s
	case "gateway_id":
		ev.GatewayID = s
	case "user":
		ev.User = s
	case "provider":
		ev.Provider = s
	case "model":
		ev.Model = s
	case "decision":
		ev.Decision = Decision(s)
	case "timestamp":
		t, err := ParseTimestamp(s)
		if err != nil {
			return fieldErr("timestamp", "must be an RFC 3339 / ISO 8601 date-time")
		}
		if !InTimestampWindow(t) {
			// Refused here, so the record does not count as having a
			// timestamp (quarantine and reconciliation would place it).
			return fieldErr("timestamp", timestampRule)
		}
		ev.Timestamp = t
	}
	bit, _ := fieldBit(key)
	ev.present |= bit
	return nil
}

func setIntField(ev *Event, key string, n int64) {
	switch key {
	case "latency_ms":
		ev.LatencyMs = n
	case "input_tokens":
		ev.InputTokens = n
	case "output_tokens":
		ev.OutputTokens = n
	}
	bit, _ := fieldBit(key)
	ev.present |= bit
}

// internFieldName returns the contract's name for key, or "" for a
// field the contract does not name. A switch on string(key) compiles to
// comparisons without allocating.
func internFieldName(key []byte) string {
	switch string(key) {
	case "id":
		return "id"
	case "timestamp":
		return "timestamp"
	case "gateway_id":
		return "gateway_id"
	case "user":
		return "user"
	case "provider":
		return "provider"
	case "model":
		return "model"
	case "decision":
		return "decision"
	case "policies_evaluated":
		return "policies_evaluated"
	case "policies_triggered":
		return "policies_triggered"
	case "latency_ms":
		return "latency_ms"
	case "input_tokens":
		return "input_tokens"
	case "output_tokens":
		return "output_tokens"
	case "cost":
		return "cost"
	case "metadata":
		return "metadata"
	}
	return ""
}

func fieldBit(name string) (fieldSet, bool) {
	switch name {
	case "id":
		return fID, true
	case "timestamp":
		return fTimestamp, true
	case "gateway_id":
		return fGatewayID, true
	case "user":
		return fUser, true
	case "provider":
		return fProvider, true
	case "model":
		return fModel, true
	case "decision":
		return fDecision, true
	case "latency_ms":
		return fLatencyMs, true
	case "input_tokens":
		return fInputTokens, true
	case "output_tokens":
		return fOutputTokens, true
	case "cost":
		return fCost, true
	}
	return 0, false
}

// RecordID returns the "id" string of a raw record (a JSON object, which
// every decoder's raw text is), or "" when it has none. A quarantined
// record is identified by it, so the same bad event resent — in another
// format, or with other bytes — is quarantined once.
func RecordID(raw []byte) string {
	var p fastjson.Parser
	return recordID(&p, raw)
}

// recordID is RecordID with a parser to reuse (a new one allocates its
// value cache again for every record).
func recordID(p *fastjson.Parser, raw []byte) string {
	v, err := p.ParseBytes(raw)
	if err != nil {
		return ""
	}
	return string(v.GetStringBytes("id"))
}
