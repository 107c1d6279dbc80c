package schemas

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// fastParse is a schema-specific scanner for the records real exports and
// pages are made of: one JSON object of the contract's fields, strings
// without escapes, integers without exponents. It decodes b's leading
// object straight into ev, with no value tree and no allocation beyond
// the event's own strings, and returns the object's length.
//
// It is a shortcut, never a judge: it returns ok=false on anything it is
// not sure of — an escape, a control character, a duplicate field, a
// wrong type, a value a rule refuses, white space inside metadata, the
// end of b — and the caller then parses the record with fastjson exactly
// as before, which decides what the record is and why it is refused. So
// every record decodes, validates and quarantines as it did; when ok is
// true, ev is what fastjson's path makes of b[:n] (FuzzFastParse and
// FuzzDecodeDifferential check both).
func (ps *Parser) fastParse(b []byte, ev *Event) (n int, ok bool) {
	ev.reset()
	i := skipWhite(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = skipWhite(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	var seen uint32 // the fields read, by code, to refuse duplicates
	ps.ascii = true
	next := codeID // records list their fields in the contract's order, mostly
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, false
		}
		var key []byte
		var code int
		if next != codeUnknown && keyPatterns[next].at(b, i) {
			// The predicted name and its colon, as writers lay them out.
			n := len(quotedKeys[next])
			key, code = b[i+1:i+n-1], next
			i += n + 1
		} else {
			var j int
			var ok bool
			if key, j, ok = plainString(b, i); !ok {
				return 0, false
			}
			code = fieldCode(key)
			i = skipWhite(b, j)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i++
		}
		next = codeUnknown
		if code != codeUnknown && code < codeMetadata {
			next = code + 1
		}
		i = skipWhite(b, i)
		if i >= len(b) {
			return 0, false
		}
		if code != codeUnknown {
			if seen&(1<<code) != 0 {
				return 0, false // fastjson's path lets the last one win; leave it that
			}
			seen |= 1 << code
		}
		if i, ok = ps.fastField(b, i, code, key, ev); !ok {
			return 0, false
		}
		i = skipWhite(b, i)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = skipWhite(b, i+1)
		case '}':
			ev.plain = ps.ascii
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// Field codes of the contract's fields, in one switch on the key's bytes.
const (
	codeUnknown = iota
	codeID
	codeTimestamp
	codeGatewayID
	codeUser
	codeProvider
	codeModel
	codeDecision
	codePoliciesEvaluated
	codePoliciesTriggered
	codeLatencyMs
	codeInputTokens
	codeOutputTokens
	codeCost
	codeMetadata
)

func fieldCode(key []byte) int {
	switch string(key) {
	case "id":
		return codeID
	case "timestamp":
		return codeTimestamp
	case "gateway_id":
		return codeGatewayID
	case "user":
		return codeUser
	case "provider":
		return codeProvider
	case "model":
		return codeModel
	case "decision":
		return codeDecision
	case "policies_evaluated":
		return codePoliciesEvaluated
	case "policies_triggered":
		return codePoliciesTriggered
	case "latency_ms":
		return codeLatencyMs
	case "input_tokens":
		return codeInputTokens
	case "output_tokens":
		return codeOutputTokens
	case "cost":
		return codeCost
	case "metadata":
		return codeMetadata
	}
	return codeUnknown
}

// quotedKeys are the field names as they appear in records, by code.
var quotedKeys = [...]string{
	codeID: `"id"`, codeTimestamp: `"timestamp"`, codeGatewayID: `"gateway_id"`, codeUser: `"user"`,
	codeProvider: `"provider"`, codeModel: `"model"`, codeDecision: `"decision"`,
	codePoliciesEvaluated: `"policies_evaluated"`, codePoliciesTriggered: `"policies_triggered"`,
	codeLatencyMs: `"latency_ms"`, codeInputTokens: `"input_tokens"`, codeOutputTokens: `"output_tokens"`,
	codeCost: `"cost"`, codeMetadata: `"metadata"`,
}

// keyPattern is a quoted field name and its colon as words, for a
// comparison in two or three loads instead of a call to compare bytes.
type keyPattern struct {
	n                   int // bytes: 5 to 24
	first, middle, last uint64
	mask                uint64 // of first, for names shorter than 8 bytes
}

var keyPatterns = func() (p [codeMetadata + 1]keyPattern) {
	for code, q := range quotedKeys {
		if q == "" {
			continue
		}
		k := []byte(q + ":")
		pad := append(k, make([]byte, 24)...)
		p[code] = keyPattern{n: len(k), first: binary.LittleEndian.Uint64(pad), mask: ^uint64(0)}
		if len(k) < 8 {
			p[code].mask = 1<<(8*len(k)) - 1
			continue
		}
		p[code].last = binary.LittleEndian.Uint64(k[len(k)-8:])
		if len(k) > 16 {
			p[code].middle = binary.LittleEndian.Uint64(k[8:])
		}
	}
	return p
}()

// at reports whether b[i:] starts with the pattern; it needs eight bytes
// of b from i (the rest of a record always has them, or the record ends
// there and the general path decides).
func (p *keyPattern) at(b []byte, i int) bool {
	if len(b)-i < 8 || len(b)-i < p.n {
		return false
	}
	if binary.LittleEndian.Uint64(b[i:])&p.mask != p.first {
		return false
	}
	if p.n <= 8 {
		return true
	}
	if p.n > 16 && binary.LittleEndian.Uint64(b[i+8:]) != p.middle {
		return false
	}
	return binary.LittleEndian.Uint64(b[i+p.n-8:]) == p.last
}

// fastField decodes the value at b[i] of the field name (key when the
// contract does not name it) and returns the index after it.
func (ps *Parser) fastField(b []byte, i int, code int, key []byte, ev *Event) (int, bool) {
	if b[i] == 'n' && isNull(b, i) {
		if code == codeUnknown {
			// An unknown field keeps its null, as fastjson's path does.
			ev.Extra = append(ev.Extra, Field{Name: string(key), Value: []byte("null")})
		}
		return i + 4, true
	}
	switch code {
	case codeID:
		// Ids are UUIDs: parsed here, once, from the buffer, and kept
		// beside the text for validation and the dedup key (Event.UUID).
		// Hex digits and dashes need no escaping, so plainString would
		// return the same bytes; any other id takes the general path below.
		if len(b)-i > 37 && b[i] == '"' && b[i+37] == '"' {
			if u, ok := parseUUID(b[i+1 : i+37]); ok {
				ev.ID = ps.ids.string(b[i+1 : i+37])
				ev.uuid, ev.uuidOf = u, ev.ID
				ev.present |= fID
				return i + 38, true
			}
		}
	}
	switch code {
	case codeID, codeTimestamp, codeGatewayID, codeUser, codeProvider, codeModel, codeDecision:
		if b[i] != '"' {
			return 0, false
		}
		s, j, ok := ps.valueString(b, i)
		if !ok {
			return 0, false
		}
		switch code {
		case codeID:
			ev.ID = ps.ids.string(s)
			ev.present |= fID
		case codeTimestamp:
			t, ok := fastTimestamp(s)
			if !ok {
				var err error
				if t, err = ParseTimestamp(string(s)); err != nil {
					return 0, false
				}
			}
			if !InTimestampWindow(t) {
				return 0, false
			}
			ev.Timestamp = t
			ev.present |= fTimestamp
		case codeGatewayID:
			ev.GatewayID = ps.interned.get(s)
			ev.present |= fGatewayID
		case codeUser:
			ev.User = ps.interned.get(s)
			ev.present |= fUser
		case codeProvider:
			ev.Provider = ps.interned.get(s)
			ev.present |= fProvider
		case codeModel:
			ev.Model = ps.interned.get(s)
			ev.present |= fModel
		case codeDecision:
			ev.Decision = Decision(ps.interned.get(s))
			ev.present |= fDecision
		}
		return j, true
	case codePoliciesEvaluated, codePoliciesTriggered:
		if b[i] != '[' {
			return 0, false
		}
		i = skipWhite(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			s, j, ok := ps.valueString(b, i)
			if !ok {
				return 0, false
			}
			if code == codePoliciesEvaluated {
				ev.PoliciesEvaluated = append(ev.PoliciesEvaluated, ps.interned.get(s))
			} else {
				ev.PoliciesTriggered = append(ev.PoliciesTriggered, ps.interned.get(s))
			}
			i = skipWhite(b, j)
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i = skipWhite(b, i+1)
			case ']':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case codeLatencyMs, codeInputTokens, codeOutputTokens:
		n, j, ok := plainInt(b, i)
		if !ok {
			return 0, false
		}
		switch code {
		case codeLatencyMs:
			ev.LatencyMs, ev.present = n, ev.present|fLatencyMs
		case codeInputTokens:
			ev.InputTokens, ev.present = n, ev.present|fInputTokens
		default:
			ev.OutputTokens, ev.present = n, ev.present|fOutputTokens
		}
		return j, true
	case codeCost:
		var d Decimal
		var err error
		var j int
		if b[i] == '"' {
			var s []byte
			var ok bool
			if s, j, ok = plainString(b, i); !ok {
				return 0, false
			}
			d, err = parseDecimal(s)
		} else {
			var ok bool
			if j, ok = compactValue(b, i, 0); !ok || !isNumberStart(b[i]) {
				return 0, false
			}
			d, err = parseJSONNumberDecimal(string(b[i:j]))
		}
		if err != nil {
			return 0, false
		}
		ev.Cost = d
		ev.present |= fCost
		return j, true
	case codeMetadata:
		if b[i] != '{' {
			return 0, false
		}
		j, ok := compactValue(b, i, 0)
		if !ok {
			return 0, false
		}
		// Compact JSON without escapes is its own re-encoding, so the
		// bytes are what fastjson's MarshalTo writes.
		ev.Metadata = append(ev.Metadata[:0], b[i:j]...)
		return j, true
	}
	j, ok := compactValue(b, i, 0)
	if !ok {
		return 0, false
	}
	ev.Extra = append(ev.Extra, Field{Name: string(key), Value: append([]byte(nil), b[i:j]...)})
	return j, true
}

// valueString is plainString for a string the row encoder writes; it
// notes whether the string is all ASCII (then the encoder copies it).
func (ps *Parser) valueString(b []byte, i int) ([]byte, int, bool) {
	s, end, ascii, ok := scanString(b, i)
	ps.ascii = ps.ascii && ascii
	return s, end, ok
}

func skipWhite(b []byte, i int) int {
	// One comparison for the common case, a byte that is not white space.
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

func isNull(b []byte, i int) bool {
	return len(b)-i >= 4 && b[i] == 'n' && b[i+1] == 'u' && b[i+2] == 'l' && b[i+3] == 'l'
}

// plainString returns the body of the string whose quote is at b[i] and
// the index after its closing quote; ok is false for an escape, a
// control character or a missing end.
func plainString(b []byte, i int) (s []byte, end int, ok bool) {
	s, end, _, ok = scanString(b, i)
	return s, end, ok
}

// scanString is plainString that also says whether the string is ASCII.
// It reads eight bytes at a time: the lowest byte escapeMask marks in a
// word is exactly the first quote, backslash or control character, so
// one look at it ends the string or refuses it.
func scanString(b []byte, i int) (s []byte, end int, ascii, ok bool) {
	const highs = 0x8080808080808080
	var high uint64 // the high bits of the string's bytes so far
	j := i + 1
	for ; j+8 <= len(b); j += 8 {
		x := binary.LittleEndian.Uint64(b[j:])
		m := escapeMask(x)
		if m == 0 {
			high |= x
			continue
		}
		k := bits.TrailingZeros64(m) >> 3
		if b[j+k] != '"' {
			return nil, 0, false, false
		}
		high |= x & (1<<(8*k) - 1) // the bytes before the quote
		return b[i+1 : j+k], j + k + 1, high&highs == 0, true
	}
	for ; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, high&highs == 0, true
		case c == '\\' || c < 0x20:
			return nil, 0, false, false
		default:
			high |= uint64(c)
		}
	}
	return nil, 0, false, false
}

// plainInt reads -?(0|[1-9][0-9]{0,17}) followed by a byte that ends a
// JSON number: integers that fit an int64 without a check, which is what
// the contract's counts are.
func plainInt(b []byte, i int) (int64, int, bool) {
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	var n int64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + int64(b[i]-'0')
		i++
	}
	digits := i - start
	if digits == 0 || digits > 18 || (digits > 1 && b[start] == '0') || i >= len(b) || !endsNumber(b[i]) {
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, i, true
}

func endsNumber(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

func isNumberStart(c byte) bool { return c == '-' || c >= '0' && c <= '9' }

// maxCompactDepth bounds compactValue's nesting (fastjson allows 300;
// deeper values take fastjson's path).
const maxCompactDepth = 32

// compactValue checks that the JSON value at b[i] is strict JSON with no
// white space, no escapes and no control characters, and returns the
// index after it. Such text is exactly what fastjson's MarshalTo writes
// for it, so its bytes can be kept as they are.
func compactValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxCompactDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		_, j, ok := plainString(b, i)
		return j, ok
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i++
		if i < len(b) && b[i] == closer {
			return i + 1, true
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, false
				}
				_, j, ok := plainString(b, i)
				if !ok || j >= len(b) || b[j] != ':' {
					return 0, false
				}
				i = j + 1
			}
			j, ok := compactValue(b, i, depth+1)
			if !ok || j >= len(b) {
				return 0, false
			}
			switch b[j] {
			case ',':
				i = j + 1
			case closer:
				return j + 1, true
			default:
				return 0, false
			}
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case isNumberStart(c):
		return strictNumber(b, i)
	}
	return 0, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return 0, false
}

// strictNumber reads a number by JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func strictNumber(b []byte, i int) (int, bool) {
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	if n := digits(); n == 0 || n > 1 && b[start] == '0' {
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, false
		}
	}
	return i, true
}

// fastTimestamp parses the RFC 3339 forms producers write —
// 2006-01-02T15:04:05[.fraction of 1 to 9 digits](Z|±07:00) — by the same
// rules as time.Parse's RFC 3339 path (ranges, days of the month), from
// bytes; ok is false for anything else, which ParseTimestamp then judges.
func fastTimestamp(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hour, minute, sec := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	if day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	s = s[19:]
	nsec := 0
	if len(s) >= 2 && s[0] == '.' {
		n := 1
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return time.Time{}, false
		}
		nsec = num(s[1:n])
		for k := n; k < 10; k++ {
			nsec *= 10
		}
		s = s[n:]
	}
	if year < 1 {
		return time.Time{}, false
	}
	unix := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	switch {
	case len(s) == 1 && s[0] == 'Z':
		return time.Unix(unix, int64(nsec)).UTC(), true
	case len(s) == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':':
		hh, mm := num(s[1:3]), num(s[4:6])
		if hh < 0 || hh > 23 || mm < 0 || mm > 59 {
			return time.Time{}, false
		}
		off := int64(hh*3600 + mm*60)
		if s[0] == '-' {
			off = -off
		}
		return time.Unix(unix-off, int64(nsec)).UTC(), true
	}
	return time.Time{}, false
}

// daysFromCivil returns the days from 1970-01-01 to the given date of the
// proleptic Gregorian calendar (year >= 1), without time.Date's
// normalisation (H. Hinnant's algorithm).
func daysFromCivil(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400 // y >= 0
	yoe := y - era*400
	mp := int64((month + 9) % 12)
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int((m-1)%7%2)
}

// needsEscape reports whether any of the eight bytes in x is a quote, a
// backslash or a control character.
func needsEscape(x uint64) bool { return escapeMask(x) != 0 }

// escapeMask sets the high bit of the bytes of x that are a quote, a
// backslash or a control character (SWAR), and perhaps of bytes above
// such a byte (a borrow), never below: the lowest bit set, if any, marks
// the first such byte exactly, and a zero result is exact.
func escapeMask(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := x ^ (ones * '"')
	backslash := x ^ (ones * '\\')
	zeroQuote := (quote - ones) &^ quote
	zeroBackslash := (backslash - ones) &^ backslash
	control := (x - ones*0x20) &^ x
	return (zeroQuote | zeroBackslash | control) & highs
}
