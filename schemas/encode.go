package schemas

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// LoadMeta identifies where a row came from: the load it belongs to, the
// kind of source (export, pull, webhook) and when ktpipe ingested it.
type LoadMeta struct {
	LoadID     string
	Source     string
	IngestedAt time.Time
}

// AppendEventRow appends ev as one NDJSON line in the column layout of
// EventRowSchema, ready for a BigQuery load job.
func AppendEventRow(b []byte, ev *Event, d Derived, m LoadMeta) []byte {
	return append(appendEventColumns(b, ev, d), loadColumns(m)...)
}

// EventRowEncoder is AppendEventRow for the rows of one load: the load's
// own columns (load id, source, ingest time) are the same on every row,
// so they are encoded once.
type EventRowEncoder struct {
	tail []byte
}

// NewEventRowEncoder returns an encoder for rows of the load m.
func NewEventRowEncoder(m LoadMeta) *EventRowEncoder {
	return &EventRowEncoder{tail: loadColumns(m)}
}

// Append appends ev as AppendEventRow does.
func (e *EventRowEncoder) Append(b []byte, ev *Event, d Derived) []byte {
	return append(appendEventColumns(b, ev, d), e.tail...)
}

// loadColumns encodes the row's last columns and its end.
func loadColumns(m LoadMeta) []byte {
	b := []byte(`,"load_id":`)
	b = AppendJSONString(b, m.LoadID)
	b = append(b, `,"source":`...)
	b = AppendJSONString(b, m.Source)
	b = append(b, `,"ingested_at":"`...)
	b = appendTimestamp(b, m.IngestedAt)
	return append(b, "\"}\n"...)
}

// appendEventColumns appends the row's columns from the event's up to
// (not including) the load's.
func appendEventColumns(b []byte, ev *Event, d Derived) []byte {
	b = append(b, `{"event_id":`...)
	b = appendString(b, ev.ID, ev.plain)
	b = append(b, `,"event_timestamp":"`...)
	b = appendTimestamp(b, ev.Timestamp)
	b = append(b, `","event_date":"`...)
	b = appendDate(b, d.EventDate)
	b = append(b, `","event_hour":`...)
	b = appendInt(b, int64(d.Hour))
	b = append(b, `,"gateway_id":`...)
	b = appendString(b, ev.GatewayID, ev.plain)
	b = append(b, `,"user":`...)
	b = appendString(b, ev.User, ev.plain)
	b = append(b, `,"provider":`...)
	b = appendString(b, ev.Provider, ev.plain)
	b = append(b, `,"model":`...)
	b = appendString(b, ev.Model, ev.plain)
	b = append(b, `,"decision":`...)
	b = appendString(b, string(ev.Decision), ev.plain)
	b = append(b, `,"policies_evaluated":`...)
	b = appendStringArray(b, ev.PoliciesEvaluated, ev.plain)
	b = append(b, `,"policies_triggered":`...)
	b = appendStringArray(b, ev.PoliciesTriggered, ev.plain)
	b = append(b, `,"policy_count":`...)
	b = appendInt(b, int64(d.PolicyCount))
	b = append(b, `,"latency_ms":`...)
	b = appendInt(b, ev.LatencyMs)
	b = append(b, `,"input_tokens":`...)
	b = appendInt(b, ev.InputTokens)
	b = append(b, `,"output_tokens":`...)
	b = appendInt(b, ev.OutputTokens)
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, d.TotalTokens)
	// NUMERIC travels as a string so no float ever touches it.
	b = append(b, `,"cost_usd":"`...)
	b = d.CostUSD.Append(b)
	b = append(b, `","was_blocked":`...)
	b = strconv.AppendBool(b, d.WasBlocked)
	// JSON columns travel as JSON text in a string, which BigQuery's load
	// jobs accept for JSON and STRING columns alike.
	b = append(b, `,"metadata":`...)
	if len(ev.Metadata) == 0 {
		b = append(b, "null"...)
	} else {
		b = appendJSONTextString(b, ev.Metadata)
	}
	b = append(b, `,"extra":`...)
	if len(ev.Extra) == 0 {
		b = append(b, "null"...)
	} else {
		b = appendJSONTextString(b, appendExtra(nil, ev.Extra))
	}
	// The guide's columns. Their table columns come last (added to
	// existing tables at their end, bqschema.EventRowSchema); a load job
	// matches NDJSON keys by name, so here they may precede the load's.
	b = append(b, `,"date_id":`...)
	b = appendInt(b, d.DateID)
	b = append(b, `,"model_id":`...)
	b = AppendJSONString(b, d.ModelID)
	b = append(b, `,"user_id":`...)
	b = AppendJSONString(b, d.UserID)
	b = append(b, `,"policies_count":`...)
	b = appendInt(b, int64(d.PolicyCount))
	return b
}

// QuarantineRow is one invalid record and why it was refused.
type QuarantineRow struct {
	// RecordHash identifies the record: sha256 of "id:<id>" when it has an
	// id, of the whole raw text otherwise (also when Raw keeps only a
	// truncated prefix); a resent bad record stays single.
	RecordHash string
	EventID    string // best effort; empty when the record had none
	// EventTimestamp is the record's timestamp when it parsed (zero: none).
	EventTimestamp time.Time
	Field          string
	Rule           string
	Raw            []byte
}

// AppendQuarantineRow appends q as one NDJSON line in the layout of
// QuarantineSchema.
func AppendQuarantineRow(b []byte, q QuarantineRow, m LoadMeta) []byte {
	b = append(b, `{"record_hash":`...)
	b = AppendJSONString(b, q.RecordHash)
	b = append(b, `,"event_id":`...)
	if q.EventID == "" {
		b = append(b, "null"...)
	} else {
		b = AppendJSONString(b, q.EventID)
	}
	b = append(b, `,"event_timestamp":`...)
	if q.EventTimestamp.IsZero() {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = appendTimestamp(b, q.EventTimestamp)
		b = append(b, '"')
	}
	b = append(b, `,"field":`...)
	b = AppendJSONString(b, q.Field)
	b = append(b, `,"rule":`...)
	b = AppendJSONString(b, q.Rule)
	b = append(b, `,"raw":`...)
	b = AppendJSONString(b, string(q.Raw))
	b = append(b, `,"load_id":`...)
	b = AppendJSONString(b, m.LoadID)
	b = append(b, `,"source":`...)
	b = AppendJSONString(b, m.Source)
	b = append(b, `,"quarantined_at":"`...)
	b = m.IngestedAt.UTC().AppendFormat(b, "2006-01-02T15:04:05.999999Z07:00")
	return append(b, "\"}\n"...)
}

func appendExtra(b []byte, extra []Field) []byte {
	b = append(b, '{')
	for i, f := range extra {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, f.Name)
		b = append(b, ':')
		b = append(b, f.Value...)
	}
	return append(b, '}')
}

func appendStringArray(b []byte, ss []string, plain bool) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s, plain)
	}
	return append(b, ']')
}

// appendString is AppendJSONString, or for a string known to be plain
// ASCII (Event.plain) the same bytes without looking at each one.
func appendString(b []byte, s string, plain bool) []byte {
	if !plain {
		return AppendJSONString(b, s)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes a JSON string holds unescaped.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendInt is strconv.AppendInt(b, n, 10), with two digits a step from
// a table for the small non-negative counts rows carry.
func appendInt(b []byte, n int64) []byte {
	if n < 0 || n >= 1e9 {
		return strconv.AppendInt(b, n, 10)
	}
	if n < 10 {
		return append(b, byte('0'+n))
	}
	u := uint32(n)
	w := 2 // digits
	for p := uint32(100); w < 9 && u >= p; p *= 10 {
		w++
	}
	// The digits go straight into b, from the last.
	l := len(b) + w
	b = slices.Grow(b, w)[:l]
	i := l
	for u >= 100 {
		q := u / 100
		r := u - q*100
		i -= 2
		b[i], b[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		u = q
	}
	if u >= 10 {
		b[i-2], b[i-1] = digitPairs[2*u], digitPairs[2*u+1]
	} else {
		b[i-1] = byte('0' + u)
	}
	return b
}

const digitPairs = "00010203040506070809" + "10111213141516171819" + "20212223242526272829" + "30313233343536373839" + "40414243444546474849" +
	"50515253545556575859" + "60616263646566676869" + "70717273747576777879" + "80818283848586878889" + "90919293949596979899"

// appendTimestamp writes t (UTC) as RFC 3339 with microseconds, BigQuery
// TIMESTAMP's precision; hand-rolled because time.AppendFormat was a tenth
// of the hot path.
func appendTimestamp(b []byte, t time.Time) []byte {
	days, sec := unixDays(t)
	b = appendDays(b, days, t)
	h, m, s := sec/3600, sec/60%60, sec%60
	b = append(b, 'T', byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':', byte('0'+s/10), byte('0'+s%10))
	if us := t.Nanosecond() / 1000; us > 0 {
		b = append(b, '.')
		for div := 100000; div > 0; div /= 10 {
			b = append(b, byte('0'+us/div%10))
		}
	}
	return append(b, 'Z')
}

func appendDate(b []byte, t time.Time) []byte {
	days, _ := unixDays(t)
	return appendDays(b, days, t)
}

// unixDays splits t into whole days since 1970-01-01 (UTC) and the
// seconds into the last: the calendar by integer arithmetic, cheaper
// than t.Date and t.Clock (appendTimestampReference in the tests is the
// time package's version).
func unixDays(t time.Time) (days, sec int64) {
	unix := t.Unix()
	days = unix / 86400
	if days*86400 > unix {
		days-- // floor, for times before 1970
	}
	return days, unix - days*86400
}

// appendDays writes the date of days as yyyy-mm-dd; t (the same instant)
// is formatted by the time package outside years 0 to 9999.
func appendDays(b []byte, days int64, t time.Time) []byte {
	y, mo, d := civilFromDays(days)
	if y < 0 || y > 9999 {
		return t.UTC().AppendFormat(b, time.DateOnly)
	}
	return append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+mo/10), byte('0'+mo%10), '-', byte('0'+d/10), byte('0'+d%10))
}

// appendJSONTextString appends compact JSON text (as the parser re-emits
// it: control characters inside its strings are already escaped) as a
// JSON string literal. Metadata as producers write it is ASCII without
// backslashes, so only its quotes need a backslash: that text is copied
// eight bytes at a time where a word holds no quote. Anything else takes
// appendJSONTextStringGeneral (FuzzJSONTextString holds the two together).
func appendJSONTextString(b, text []byte) []byte {
	n := len(b)
	// Room for every byte escaped, both quotes and the slack of the last
	// word's eight-byte writes.
	b = slices.Grow(b, 2*len(text)+2+16)[:n+2*len(text)+2+16]
	dst := b[n:]
	dst[0] = '"'
	j := 1
	i := 0
	for ; i+8 <= len(text); i += 8 {
		x := binary.LittleEndian.Uint64(text[i:])
		if x&0x8080808080808080 != 0 || hasBackslashOrControl(x) {
			return appendJSONTextStringGeneral(b[:n], text)
		}
		binary.LittleEndian.PutUint64(dst[j:], x)
		// Each quote, lowest first: a backslash in its place, and the
		// word's bytes from the quote on written again one further.
		shift := 0
		for m := quoteMask(x); m != 0; m &= m - 1 {
			k := bits.TrailingZeros64(m) >> 3
			dst[j+k+shift] = '\\'
			binary.LittleEndian.PutUint64(dst[j+k+shift+1:], x>>(8*k))
			shift++
		}
		j += 8 + shift
	}
	for _, c := range text[i:] {
		switch {
		case c >= 0x80 || c < 0x20 || c == '\\':
			return appendJSONTextStringGeneral(b[:n], text)
		case c == '"':
			dst[j] = '\\'
			j++
		}
		dst[j] = c
		j++
	}
	dst[j] = '"'
	return b[:n+j+1]
}

// quoteMask sets the high bit of exactly the bytes of x that are quotes.
func quoteMask(x uint64) uint64 {
	const lows = 0x7f7f7f7f7f7f7f7f
	q := x ^ 0x2222222222222222
	// A byte's high bit ends up set when any of its bits is: exact, with
	// no borrow between bytes.
	nonzero := (q&lows + lows) | q
	return ^nonzero &^ lows
}

// hasBackslashOrControl is needsEscape without the quote (SWAR, exact
// when the result is false).
func hasBackslashOrControl(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	bs := x ^ (ones * '\\')
	return ((bs-ones)&^bs|(x-ones*0x20)&^x)&highs != 0
}

// appendJSONTextStringGeneral is appendJSONTextString for any text: only
// quotes, backslashes and control characters are escaped; text that is
// not valid UTF-8 takes AppendJSONString, which replaces bad bytes.
func appendJSONTextStringGeneral(b, text []byte) []byte {
	if !utf8.Valid(text) {
		return AppendJSONString(b, string(text))
	}
	b = append(b, '"')
	for len(text) > 0 {
		i := 0
		for i < len(text) && text[i] != '"' && text[i] != '\\' && text[i] >= 0x20 {
			i++
		}
		b = append(b, text[:i]...)
		if i == len(text) {
			break
		}
		if c := text[i]; c < 0x20 {
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		} else {
			b = append(b, '\\', c)
		}
		text = text[i+1:]
	}
	return append(b, '"')
}

// AppendJSONString appends s as a JSON string literal; invalid UTF-8
// becomes U+FFFD so the output is always valid JSON.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	i := 0
	// Eight plain ASCII bytes at a time (most strings are all plain).
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if x&0x8080808080808080 != 0 || needsEscape(x) {
			break
		}
	}
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
