package schemas

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The shortcuts below the scanner (the parsed id, the gateway memo, the
// transform's arithmetic and caches, the metadata writer) each keep the
// plain version they replaced as a reference, here or in the package, and
// these tests hold them together.

// parseUUIDReference is ParseUUID as it was before parseUUID.
func parseUUIDReference(s string) (u [16]byte, ok bool) {
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

func FuzzParseUUID(f *testing.F) {
	for _, s := range []string{"0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f", "0B6C7E9E-3F1A-4C2B-9D7E-1A2B3C4D5E6F",
		"0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6g", "0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6", "0b6c7e9e+3f1a-4c2b-9d7e-1a2b3c4d5e6f",
		"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wok := parseUUIDReference(s)
		got, ok := ParseUUID(s)
		gotB, okB := parseUUID([]byte(s))
		if ok != wok || okB != wok || ok && (got != want || gotB != want) {
			t.Fatalf("%q: %x %v and %x %v, want %x %v", s, got, ok, gotB, okB, want, wok)
		}
	})
}

// checkUUID fails when the id the scanner parsed on the way (Event.UUID)
// is not ParseUUID of the event's id.
func checkUUID(t *testing.T, ev *Event) {
	t.Helper()
	got, ok := ev.UUID()
	want, wok := ParseUUID(ev.ID)
	if ok != wok || ok && got != want {
		t.Fatalf("id %q: UUID() %x %v, ParseUUID %x %v", ev.ID, got, ok, want, wok)
	}
}

// An id changed after decoding is parsed again, not taken from the
// scanner's note.
func TestEventUUIDFollowsTheID(t *testing.T) {
	var p Parser
	var ev Event
	if _, ok := p.fastParse([]byte(validEventText), &ev); !ok {
		t.Fatal("the scanner left the valid event")
	}
	if ev.uuidOf == "" {
		t.Fatal("the scanner did not keep the id's bytes")
	}
	checkUUID(t, &ev)
	ev.ID = "11111111-2222-4333-8444-555555555555"
	checkUUID(t, &ev)
	ev.ID = "not a uuid"
	checkUUID(t, &ev)
}

// FuzzValidator: a Validator gives Validate's verdict for every event, in
// any order, whatever its memo holds.
func FuzzValidator(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0, 1, 7, 9, 4, 5, 6})
	f.Fuzz(func(t *testing.T, picks []byte) {
		gws := validatorGateways()
		known := GatewaySet{}
		for i, g := range gws {
			if i%3 != 0 {
				known[g] = true
			}
		}
		var p Parser
		var ev Event
		if err := p.Parse([]byte(validEventText), &ev); err != nil {
			t.Fatal(err)
		}
		for _, set := range []GatewaySet{known, nil} {
			v := NewValidator(set)
			for _, k := range picks {
				ev.GatewayID = gws[int(k)%len(gws)]
				if d := errDiff(v.Validate(&ev), Validate(&ev, set)); d != "" {
					t.Fatalf("gateway %q: %s", ev.GatewayID, d)
				}
			}
		}
	})
}

// validatorGateways are ids that share memo slots, ids that are not
// UUIDs, short and empty ones, and one UUID in two spellings.
func validatorGateways() []string {
	var ids []string
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		ids = append(ids, fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, r.Uint32()&0xfff, r.Uint64()&0xffffffffffff))
	}
	return append(ids, "", "a", "ab", "not-a-uuid-but-36-bytes-long-xxxxxxx", "0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f", "0B6C7E9E-3F1A-4C2B-9D7E-1A2B3C4D5E6F")
}

// deriveReference is derive as the time package computes it.
func deriveReference(ev *Event) Derived {
	ts := ev.Timestamp.UTC()
	return Derived{
		EventDate:   time.Date(ts.Year(), ts.Month(), ts.Day(), 0, 0, 0, 0, time.UTC),
		Hour:        ts.Hour(),
		TotalTokens: ev.InputTokens + ev.OutputTokens,
		CostUSD:     ev.Cost,
		PolicyCount: len(ev.PoliciesEvaluated),
		WasBlocked:  ev.Decision == Block,
		DateID:      DateID(ts),
	}
}

func TestDeriveMatchesTimePackage(t *testing.T) {
	check := func(ts time.Time) {
		t.Helper()
		ev := Event{Timestamp: ts, InputTokens: 3, OutputTokens: 4, Cost: 5, Decision: Block, PoliciesEvaluated: []string{"a"}}
		if got, want := derive(&ev), deriveReference(&ev); got != want {
			t.Fatalf("%v: derive %+v, time package %+v", ts, got, want)
		}
	}
	check(time.Time{})
	check(MinTimestamp)
	check(MaxTimestamp.Add(-time.Nanosecond))
	check(time.Unix(-1, 0))
	check(time.Unix(0, 0))
	check(time.Unix(-86400, 999))
	check(time.Date(2026, 11, 1, 10, 15, 30, 0, time.FixedZone("x", 7200)))
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200_000; i++ {
		// Seconds from year 1 to 9999, and days either side of midnight.
		sec := r.Int64N(315537897600) - 62135596800
		if i%2 == 0 {
			sec -= sec % 86400
			sec += int64(r.IntN(3)) - 1
		}
		check(time.Unix(sec, r.Int64N(1e9)))
	}
}

func FuzzJSONTextString(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"app":"chat","region":"us-east-1","session_id":"2a6a1c27"}`,
		`{"q":"say \"hi\"","p":"c:\\dir"}`, "{\"ctl\":\"\x01\"}", `""""""""""""""""""`, `a"b"c"d"e"f"g"h"i"j"k"`, "{\"bad\":\"\xff\"}", `{"u":"ünï"}`, "", `"`, `\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		prefix := []byte("x")
		got := appendJSONTextString(prefix, text)
		want := appendJSONTextStringGeneral([]byte("x"), text)
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: %q, want %q", text, got, want)
		}
	})
}

// The memo's caches give Transform's keys when users and models share
// slots and come back after others took them.
func TestKeyMemoCachesMatchTransform(t *testing.T) {
	var m KeyMemo
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 20_000; i++ {
		ev := Event{
			User:     fmt.Sprintf("user-%d@acme.example", r.IntN(700)),
			Provider: []string{"openai", "azure_openai", "anthropic", "ab", "a"}[r.IntN(5)],
			Model:    []string{"gpt-4o", "bgpt-4o", "c", "claude-3-5-haiku", ""}[r.IntN(5)],
		}
		if got, want := m.Transform(&ev), Transform(&ev); got != want {
			t.Fatalf("%+v: memo %+v, Transform %+v", ev, got, want)
		}
	}
}

func FuzzAppendInt(f *testing.F) {
	for _, n := range []int64{0, 9, 10, 99, 100, 101, 999_999_999, 1e9, -1, -10, 1<<63 - 1, -1 << 63} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if got, want := appendInt([]byte("x"), n), strconv.AppendInt([]byte("x"), n, 10); !bytes.Equal(got, want) {
			t.Fatalf("%d: %q, want %q", n, got, want)
		}
	})
}

// Every count below ten thousand, through the table's every pair.
func TestAppendIntSmall(t *testing.T) {
	for n := int64(0); n < 10_000; n++ {
		if got, want := appendInt(nil, n), strconv.AppendInt(nil, n, 10); !bytes.Equal(got, want) {
			t.Fatalf("%d: %q, want %q", n, got, want)
		}
	}
}

// parseDecimalReference and appendDecimalReference are ParseDecimal and
// Decimal.Append as they were before they took bytes and digit pairs.
func parseDecimalReference(s string) (Decimal, error) {
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") {
		return 0, errDecimalSyntax
	}
	if len(frac) > 9 {
		return 0, errDecimalScale
	}
	var n uint64
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if c < '0' || c > '9' {
				return 0, errDecimalSyntax
			}
			if n > (1<<63-1)/10 {
				return 0, errDecimalRange
			}
			n = n*10 + uint64(c-'0')
		}
	}
	for i := len(frac); i < 9; i++ {
		if n > (1<<63-1)/10 {
			return 0, errDecimalRange
		}
		n *= 10
	}
	if n > 1<<63-1 {
		return 0, errDecimalRange
	}
	if neg {
		return Decimal(-int64(n)), nil
	}
	return Decimal(n), nil
}

func appendDecimalReference(b []byte, d Decimal) []byte {
	n := int64(d)
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/1_000_000_000, 10)
	frac := n % 1_000_000_000
	if frac == 0 {
		return b
	}
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := 9
	for end > 0 && digits[end-1] == '0' {
		end--
	}
	b = append(b, '.')
	return append(b, digits[:end]...)
}

func FuzzDecimal(f *testing.F) {
	for _, s := range []string{"0.002095000", "0", "1.", ".5", "-0.1", "12.3456789012", "9223372036.854775807",
		"9223372036.854775808", "-9223372036.854775807", "1.000000001", "0.1", "00.10", "1e3", "", "-", "1..2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, werr := parseDecimalReference(s)
		got, err := ParseDecimal(s)
		gotB, errB := parseDecimal([]byte(s))
		if got != want || gotB != want || err != werr || errB != werr {
			t.Fatalf("%q: %d %v and %d %v, want %d %v", s, got, err, gotB, errB, want, werr)
		}
		for _, d := range []Decimal{want, Decimal(len(s)) * 1_000_000_007, -want} {
			if a, b := d.Append([]byte("x")), appendDecimalReference([]byte("x"), d); !bytes.Equal(a, b) {
				t.Fatalf("%d: %q, want %q", d, a, b)
			}
		}
	})
}

// Every fraction pattern of a few amounts: each digit position zero and
// not, trailing zeros cut.
func TestDecimalAppendDigits(t *testing.T) {
	for _, base := range []Decimal{0, 7_000_000_000, 123_000_000_000} {
		for f := Decimal(0); f < 1_000_000_000; f = f*10 + 1 + f%7 {
			for _, d := range []Decimal{base + f, base + f*10%1_000_000_000, -(base + f)} {
				if a, b := d.Append(nil), appendDecimalReference(nil, d); !bytes.Equal(a, b) {
					t.Fatalf("%d: %q, want %q", d, a, b)
				}
			}
		}
	}
}

// appendTimestampReference is appendTimestamp as the time package's
// calendar writes it.
func appendTimestampReference(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		b = t.AppendFormat(b, time.DateOnly)
	} else {
		b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
			byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10))
	}
	h, m, s := t.Clock()
	b = append(b, 'T', byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':', byte('0'+s/10), byte('0'+s%10))
	if us := t.Nanosecond() / 1000; us > 0 {
		b = append(b, '.')
		for div := 100000; div > 0; div /= 10 {
			b = append(b, byte('0'+us/div%10))
		}
	}
	return append(b, 'Z')
}

func TestAppendTimestampMatchesTimePackage(t *testing.T) {
	check := func(ts time.Time) {
		t.Helper()
		if got, want := appendTimestamp(nil, ts), appendTimestampReference(nil, ts); !bytes.Equal(got, want) {
			t.Fatalf("%v: %s, time package %s", ts, got, want)
		}
		if got, want := appendDate(nil, ts), appendTimestampReference(nil, ts); !bytes.HasPrefix(want, append(got, 'T')) {
			t.Fatalf("%v: date %s, time package %s", ts, got, want)
		}
	}
	for _, ts := range []time.Time{{}, MinTimestamp, MaxTimestamp.Add(-time.Nanosecond), time.Unix(-1, 999), time.Unix(0, 0),
		time.Unix(-86400, 1000), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 11, 1, 10, 15, 30, 250_000_000, time.FixedZone("x", 7200))} {
		check(ts)
	}
	r := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 200_000; i++ {
		sec := r.Int64N(315537897600) - 62135596800 // years 1 to 9999
		if i%2 == 0 {
			sec -= sec % 86400
			sec += int64(r.IntN(3)) - 1
		}
		check(time.Unix(sec, r.Int64N(1e9)))
	}
}
