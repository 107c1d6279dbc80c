package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ktpipe/ktpipe/ktsim"
)

// The schema-specific scanner (fastParse) must never change what a record
// becomes: these tests hold it to the reference decoder, fastjson's path,
// which decoded every record before the scanner existed.

// eventDiff describes how a and b differ, or returns "".
func eventDiff(a, b *Event) string {
	switch {
	case a.ID != b.ID:
		return fmt.Sprintf("id %q vs %q", a.ID, b.ID)
	case !a.Timestamp.Equal(b.Timestamp) || a.Timestamp.Location() != b.Timestamp.Location():
		return fmt.Sprintf("timestamp %v vs %v", a.Timestamp, b.Timestamp)
	case a.GatewayID != b.GatewayID || a.User != b.User || a.Provider != b.Provider || a.Model != b.Model || a.Decision != b.Decision:
		return fmt.Sprintf("strings %q %q %q %q %q vs %q %q %q %q %q", a.GatewayID, a.User, a.Provider, a.Model, a.Decision, b.GatewayID, b.User, b.Provider, b.Model, b.Decision)
	case !slices.Equal(a.PoliciesEvaluated, b.PoliciesEvaluated) || !slices.Equal(a.PoliciesTriggered, b.PoliciesTriggered):
		return fmt.Sprintf("policies %q %q vs %q %q", a.PoliciesEvaluated, a.PoliciesTriggered, b.PoliciesEvaluated, b.PoliciesTriggered)
	case a.LatencyMs != b.LatencyMs || a.InputTokens != b.InputTokens || a.OutputTokens != b.OutputTokens || a.Cost != b.Cost:
		return fmt.Sprintf("numbers %d %d %d %d vs %d %d %d %d", a.LatencyMs, a.InputTokens, a.OutputTokens, a.Cost, b.LatencyMs, b.InputTokens, b.OutputTokens, b.Cost)
	case !bytes.Equal(a.Metadata, b.Metadata):
		return fmt.Sprintf("metadata %q vs %q", a.Metadata, b.Metadata)
	case len(a.Extra) != len(b.Extra):
		return fmt.Sprintf("extra %d vs %d fields", len(a.Extra), len(b.Extra))
	case a.present != b.present:
		return fmt.Sprintf("present %b vs %b", a.present, b.present)
	}
	for i := range a.Extra {
		if a.Extra[i].Name != b.Extra[i].Name || !bytes.Equal(a.Extra[i].Value, b.Extra[i].Value) {
			return fmt.Sprintf("extra %d: %q=%q vs %q=%q", i, a.Extra[i].Name, a.Extra[i].Value, b.Extra[i].Name, b.Extra[i].Value)
		}
	}
	return ""
}

func errDiff(a, b error) string {
	var fa, fb *FieldError
	switch {
	case a == nil && b == nil:
		return ""
	case errors.As(a, &fa) && errors.As(b, &fb):
		if *fa != *fb {
			return fmt.Sprintf("field error %v vs %v", fa, fb)
		}
		return ""
	case a == nil || b == nil || a.Error() != b.Error():
		return fmt.Sprintf("error %v vs %v", a, b)
	}
	return ""
}

// FuzzFastParse: whenever the scanner accepts an object, fastjson's path
// accepts the same bytes and makes the same event of them.
func FuzzFastParse(f *testing.F) {
	for _, s := range fastParseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, ref Parser
		var a, b Event
		n, ok := fast.fastParse(data, &a)
		if !ok {
			return
		}
		if n > len(data) {
			t.Fatalf("object length %d past the input's %d", n, len(data))
		}
		if err := ref.Parse(data[:n], &b); err != nil {
			t.Fatalf("scanner accepted %q, fastjson's path refuses it: %v", data[:n], err)
		}
		if d := eventDiff(&a, &b); d != "" {
			t.Fatalf("%q: scanner vs fastjson's path: %s", data[:n], d)
		}
		checkUUID(t, &a)
		if errDiff(Validate(&a, nil), Validate(&b, nil)) != "" {
			t.Fatalf("%q: validation differs", data[:n])
		}
		if ra, rb := encodeRow(&a), encodeRow(&b); !bytes.Equal(ra, rb) {
			t.Fatalf("%q: rows differ\n%s\n%s", data[:n], ra, rb)
		}
	})
}

// encodeRow is the load row of ev (the encoder copies the strings of an
// event the scanner found plain, so rows are compared too).
func encodeRow(ev *Event) []byte {
	if !InTimestampWindow(ev.Timestamp) {
		return nil
	}
	return AppendEventRow(nil, ev, Transform(ev), LoadMeta{LoadID: "l", Source: "s"})
}

// FuzzDecodeDifferential: on any input, the decoder accepts, refuses and
// quarantines record for record what the reference decoder does, with
// the same raw text, event, error and size verdict. The first byte picks
// the format; the smallest record cap brings in the too-large paths.
func FuzzDecodeDifferential(f *testing.F) {
	for _, format := range []string{"json", "ndjson"} {
		var buf bytes.Buffer
		if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: 20, Format: format, Seed: 5, InvalidRate: 0.3}); err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{format[0]}, buf.Bytes()...))
	}
	for _, s := range fastParseSeeds {
		f.Add([]byte("j[" + s + "," + s + "]"))
		f.Add([]byte("n" + s + "\n" + s))
	}
	// The decoders' own fuzz corpora, as JSON arrays and NDJSON.
	for _, dir := range []string{"FuzzDecodeJSON", "FuzzDecodeNDJSON"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				if v, ok := corpusValue(data); ok {
					f.Add(append([]byte{dir[10] | 0x20}, v...))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		format := FormatNDJSON
		if data[0] == 'j' {
			format = FormatJSON
		}
		lim := Limits{MaxRecordBytes: 1024, MaxInflateRatio: 100}
		diffDecoders(t, data[1:], format, lim)
	})
}

// diffDecoders decodes data with both decoders and fails at the first
// record where they differ; it returns how many records the scanner took.
func diffDecoders(t *testing.T, data []byte, format Format, lim Limits) (records, fast int64) {
	t.Helper()
	fd, ferr := newDecoder(bytes.NewReader(data), format, false, lim, true)
	rd, rerr := newDecoder(bytes.NewReader(data), format, false, lim, false)
	if d := errDiff(ferr, rerr); d != "" || ferr != nil {
		if d != "" {
			t.Fatalf("open: %s", d)
		}
		return 0, 0
	}
	var a, b Event
	for i := 0; i <= len(data)+1; i++ {
		ea, eb := fd.Next(&a), rd.Next(&b)
		if d := errDiff(ea, eb); d != "" {
			t.Fatalf("record %d: %s", i, d)
		}
		if ea != nil && !isFieldError(ea) {
			return int64(i), fd.fastN // the end (after i records), or the same broken stream
		}
		if !bytes.Equal(fd.Raw(), rd.Raw()) {
			t.Fatalf("record %d: raw %q vs %q", i, fd.Raw(), rd.Raw())
		}
		oa, ba := fd.TooLarge()
		ob, bb := rd.TooLarge()
		if ba != bb || oa != ob {
			t.Fatalf("record %d: too large %v %+v vs %v %+v", i, ba, oa, bb, ob)
		}
		if d := eventDiff(&a, &b); d != "" {
			t.Fatalf("record %d (%q): %s", i, fd.Raw(), d)
		}
		checkUUID(t, &a)
		if d := errDiff(Validate(&a, nil), Validate(&b, nil)); d != "" {
			t.Fatalf("record %d: validation: %s", i, d)
		}
		if ra, rb := encodeRow(&a), encodeRow(&b); !bytes.Equal(ra, rb) {
			t.Fatalf("record %d: rows differ\n%s\n%s", i, ra, rb)
		}
	}
	t.Fatalf("decoders did not end within %d records", len(data)+1)
	return 0, 0
}

// TestFastDecoderMatchesReference runs both decoders over generated
// exports with invalid records of every kind the simulator makes, and
// checks that the scanner, not the fallback, decoded nearly all of them
// (without it the decode rate is the reference's).
func TestFastDecoderMatchesReference(t *testing.T) {
	for _, format := range []string{"json", "ndjson"} {
		var buf bytes.Buffer
		if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: 2000, Format: format, Seed: 11, InvalidRate: 0.05}); err != nil {
			t.Fatal(err)
		}
		records, fast := diffDecoders(t, buf.Bytes(), Format(format), DefaultLimits)
		if records != 2000 {
			t.Fatalf("%s: %d records, want 2000", format, records)
		}
		if fast < 1800 {
			t.Errorf("%s: the scanner decoded %d of %d records, want nearly all (>= 1800)", format, fast, records)
		}
	}
}

// TestFastParseFallsBack lists shapes the scanner must leave to fastjson's
// path (and that path's verdict on them), and shapes it must take.
func TestFastParseFallsBack(t *testing.T) {
	for _, s := range fastParseSeeds {
		var fast, ref Parser
		var a, b Event
		n, ok := fast.fastParse([]byte(s), &a)
		if !ok {
			continue
		}
		err := ref.Parse([]byte(s[:n]), &b)
		if err != nil || eventDiff(&a, &b) != "" {
			t.Errorf("%s: scanner took it (n=%d) but fastjson's path says %v / %s", s, n, err, eventDiff(&a, &b))
		}
	}
	for _, s := range []string{
		`{"id":"a\"b"}`, `{"id":"a","id":"b"}`, `{"latency_ms":1.0}`, `{"latency_ms":01}`,
		`{"metadata":{"a": 1}}`, `{"cost":1e400}`, `{"id":"a` + "\x01" + `"}`, `{"x":[1,]}`,
		`{"timestamp":"2026-02-29T00:00:00Z"}`, `{"policies_triggered":["a",1]}`,
	} {
		var p Parser
		var ev Event
		if _, ok := p.fastParse([]byte(s), &ev); ok {
			t.Errorf("%s: the scanner took it; it must leave it to fastjson's path", s)
		}
	}
	var p Parser
	var ev Event
	if n, ok := p.fastParse([]byte(validEventText), &ev); !ok || n != len(validEventText) {
		t.Errorf("the scanner left a plain valid event to the fallback (n=%d, ok=%v)", n, ok)
	}
}

const validEventText = `{"id":"0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f","timestamp":"2026-11-01T10:15:30.250+02:00",` +
	`"gateway_id":"11111111-2222-4333-8444-555555555555","user":"ada@acme.example","provider":"openai",` +
	`"model":"gpt-4o","decision":"block","policies_evaluated":["pii","toxicity"],"policies_triggered":["pii"],` +
	`"latency_ms":412,"input_tokens":1200,"output_tokens":0,"cost":"0.003000001","metadata":{"app":"chat"}}`

var fastParseSeeds = []string{
	validEventText,
	`{}`, ` { } `, `{"id":null,"metadata":null,"policies_evaluated":null,"x":null}`,
	`{"id":"a","id":"b"}`, `{"policies_evaluated":["a"],"policies_evaluated":["b"]}`,
	`{"id":"a\"b","user":"\u00e9"}`, `{"user":"caf` + "\xc3\xa9" + `","model":"` + "\xff" + `"}`,
	`{"latency_ms":-0,"input_tokens":123456789012345678,"output_tokens":1234567890123456789}`,
	`{"latency_ms":1e3,"input_tokens":1.0,"output_tokens":-1}`, `{"latency_ms":007}`,
	`{"cost":0.25}`, `{"cost":2.5e-3}`, `{"cost":"1e3"}`, `{"cost":"-0.1"}`, `{"cost":-1}`, `{"cost":1E+2}`,
	`{"timestamp":"2024-02-29T23:59:59.123456789Z"}`, `{"timestamp":"2023-02-29T00:00:00Z"}`,
	`{"timestamp":"2026-11-01T10:15:30.1234567891Z"}`, `{"timestamp":"2026-11-01T10:15:30+0100"}`,
	`{"timestamp":"1999-12-31T23:59:59-01:00"}`, `{"timestamp":"2099-12-31T23:30:00-01:00"}`,
	`{"timestamp":"2026-11-01T10:15:30.Z"}`, `{"timestamp":"2026-11-01t10:15:30Z"}`, `{"timestamp":"2026-11-01T24:00:00Z"}`,
	`{"metadata":{"a":[1,2,{"b":null}],"c":true,"d":-1.5e2,"e":""}}`, `{"metadata":{"a": 1}}`, `{"metadata":[]}`, `{"metadata":"x"}`,
	`{"new_field":{"k":[true,false]},"other":"v","n":12}`, `{"new_field":{"k" : 1}}`,
	`{"decision":"allow","decision":"block"}`, `{"id":"a",}`, `{"id":"a"`, `{"id":"a"}x`, `[1]`, `{"id":1}`,
	"{\"id\":\"a\"\n,\t\"user\" :\r\"b\"}",
	// Names that share a predicted name's first and last eight bytes.
	`{"decision":"allow","policies_zzzluated":["a"]}`, `{"model":"m","decisiox":"allow"}`,
	// A byte the string scan must see in the word that holds its end: not
	// ASCII (the row escapes it), a control character (not an end).
	strings.Replace(validEventText, `"ada@acme.example"`, "\"ada@acme.example\xff\"", 1), "{\"id\":\"ab\",\"user\":\"abcdefg\x01}",
}

// corpusValue reads the []byte of a "go test fuzz v1" corpus file.
func corpusValue(data []byte) ([]byte, bool) {
	lines := bytes.SplitN(data, []byte("\n"), 3)
	if len(lines) < 2 || !bytes.HasPrefix(lines[1], []byte("[]byte(")) {
		return nil, false
	}
	lit := bytes.TrimSuffix(bytes.TrimPrefix(bytes.TrimSpace(lines[1]), []byte("[]byte(")), []byte(")"))
	var s string
	if _, err := fmt.Sscanf(string(lit), "%q", &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// TestEventRowEncoderMatchesAppendEventRow: the per-load encoder writes
// the rows AppendEventRow does.
func TestEventRowEncoderMatchesAppendEventRow(t *testing.T) {
	var p Parser
	var ev Event
	if err := p.Parse([]byte(validEventText), &ev); err != nil {
		t.Fatal(err)
	}
	m := LoadMeta{LoadID: `load "1"`, Source: "export", IngestedAt: ev.Timestamp.Add(1500)}
	want := AppendEventRow(nil, &ev, Transform(&ev), m)
	if got := NewEventRowEncoder(m).Append(nil, &ev, Transform(&ev)); !bytes.Equal(got, want) {
		t.Fatalf("encoder row\n%s\nAppendEventRow\n%s", got, want)
	}
}

// TestFastTimestampAgreesWithTimeParse sweeps dates across the calendar
// (leap days, month ends, offsets, fractions) through both parsers.
func TestFastTimestampAgreesWithTimeParse(t *testing.T) {
	for year := 1; year <= 9999; year += 7 {
		for _, md := range []string{"01-01", "02-28", "02-29", "03-01", "04-30", "04-31", "12-31"} {
			for _, rest := range []string{"T00:00:00Z", "T23:59:59.5+01:30", "T12:34:56.123456789-23:59", "T05:06:07.1Z"} {
				s := fmt.Sprintf("%04d-%s%s", year, md, rest)
				want, err := ParseTimestamp(s)
				got, ok := fastTimestamp([]byte(s))
				if !ok {
					continue // ParseTimestamp decides those
				}
				if err != nil || !got.Equal(want) || got.Location() != want.Location() {
					t.Fatalf("%s: fast %v, time.Parse %v (%v)", s, got, want, err)
				}
			}
		}
	}
	if _, ok := fastTimestamp([]byte("2026-11-01T10:15:30Z")); !ok {
		t.Fatal("the common form was left to time.Parse")
	}
}

func isFieldError(err error) bool {
	var fe *FieldError
	return errors.As(err, &fe)
}
