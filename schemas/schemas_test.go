package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/schemas"
)

const validEvent = `{"id":"0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f","timestamp":"2026-11-01T10:15:30.250+02:00",` +
	`"gateway_id":"11111111-2222-4333-8444-555555555555","user":"ada@acme.example","provider":"openai",` +
	`"model":"gpt-4o","decision":"block","policies_evaluated":["pii","toxicity"],"policies_triggered":["pii"],` +
	`"latency_ms":412,"input_tokens":1200,"output_tokens":0,"cost":"0.003000001","metadata":{"app":"chat"}}`

var knownGateways = schemas.GatewaySet{"11111111-2222-4333-8444-555555555555": true}

func parse(t *testing.T, raw string) (*schemas.Event, error) {
	t.Helper()
	var p schemas.Parser
	ev := &schemas.Event{}
	if err := p.Parse([]byte(raw), ev); err != nil {
		return ev, err
	}
	return ev, schemas.Validate(ev, knownGateways)
}

// with replaces one field of validEvent (or removes it when value is "").
func with(field, value string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(validEvent), &m); err != nil {
		panic(err)
	}
	if value == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(value)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestParseValidEvent(t *testing.T) {
	ev, err := parse(t, validEvent)
	if err != nil {
		t.Fatalf("valid event refused: %v", err)
	}
	if got, want := ev.Timestamp, time.Date(2026, 11, 1, 8, 15, 30, 250e6, time.UTC); !got.Equal(want) {
		t.Errorf("timestamp = %v, want %v", got, want)
	}
	if got := ev.Cost.String(); got != "0.003000001" {
		t.Errorf("cost = %s, want 0.003000001 exactly", got)
	}
	if ev.Decision != schemas.Block || len(ev.PoliciesTriggered) != 1 || string(ev.Metadata) != `{"app":"chat"}` {
		t.Errorf("decoded %+v", ev)
	}
	d := schemas.Transform(ev)
	want := schemas.Derived{EventDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Hour: 8, TotalTokens: 1200, CostUSD: ev.Cost,
		// The guide's policy count is of evaluated policies, not triggered ones.
		PolicyCount: 2, WasBlocked: true,
		// Surrogate keys: the day of the UTC timestamp, and hashes of
		// "6:openai"+"gpt-4o" and the user (computed apart, with sha256sum).
		DateID: 20261101, ModelID: "959a94a23a934e27", UserID: "2a1322415fff1b1a"}
	if d != want {
		t.Errorf("Transform = %+v, want %+v", d, want)
	}
}

func TestValidationRules(t *testing.T) {
	tests := []struct {
		name, raw, field, rule string
	}{
		{"missing model", with("model", ""), "model", "is required"},
		{"null cost", with("cost", "null"), "cost", "is required"},
		{"bad timestamp", with("timestamp", `"2026-13-45T99:61:00Z"`), "timestamp", "RFC 3339"},
		{"date only timestamp", with("timestamp", `"2026-11-01"`), "timestamp", "RFC 3339"},
		{"year 1 timestamp", with("timestamp", `"0001-01-01T00:00:00Z"`), "timestamp", "from 2000-01-01T00:00:00Z up to"},
		{"year 9999 timestamp", with("timestamp", `"9999-12-31T23:59:59Z"`), "timestamp", "from 2000-01-01T00:00:00Z up to"},
		{"just before 2000", with("timestamp", `"2000-01-01T00:59:59+01:00"`), "timestamp", "from 2000-01-01T00:00:00Z up to"},
		{"2100", with("timestamp", `"2100-01-01T00:00:00Z"`), "timestamp", "from 2000-01-01T00:00:00Z up to"},
		{"decision not in enum", with("decision", `"maybe"`), "decision", "one of"},
		{"negative cost", with("cost", `"-0.25"`), "cost", ">= 0"},
		{"negative numeric cost", with("cost", `-1`), "cost", ">= 0"},
		{"cost too precise", with("cost", `"0.0000000001"`), "cost", "9 fractional"},
		{"cost not decimal", with("cost", `"1,5"`), "cost", "decimal"},
		{"negative tokens", with("input_tokens", `-3`), "input_tokens", "non-negative"},
		{"fractional tokens", with("output_tokens", `12.5`), "output_tokens", "integer"},
		{"tokens as string", with("output_tokens", `"12"`), "output_tokens", "integer"},
		{"unknown gateway", with("gateway_id", `"99999999-2222-4333-8444-555555555555"`), "gateway_id", "known gateway"},
		{"id not uuid", with("id", `"evt-1"`), "id", "UUID"},
		{"metadata not object", with("metadata", `[1]`), "metadata", "object"},
		{"policies not strings", with("policies_triggered", `[1]`), "policies_triggered", "array of strings"},
		{"not an object", `[1,2]`, "(record)", "JSON object"},
		{"not json", `{"id":`, "(record)", "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.raw)
			var fe *schemas.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FieldError on %s", err, tt.field)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Rule, tt.rule) {
				t.Errorf("got field %q rule %q, want field %q rule containing %q", fe.Field, fe.Rule, tt.field, tt.rule)
			}
		})
	}
}

func TestToleratedVariants(t *testing.T) {
	tests := []struct{ name, raw, cost string }{
		{"numeric cost", with("cost", `0.5`), "0.5"},
		{"exponent cost", with("cost", `4.2e-3`), "0.0042"},
		{"null metadata", with("metadata", `null`), "0.003000001"},
		{"no policies", with("policies_evaluated", ""), "0.003000001"},
		{"basic offset", with("timestamp", `"2026-11-01T10:15:30+0200"`), "0.003000001"},
		{"first instant of the window", with("timestamp", `"2000-01-01T01:00:00+01:00"`), "0.003000001"},
		{"last instant of the window", with("timestamp", `"2099-12-31T23:59:59.999999999Z"`), "0.003000001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := parse(t, tt.raw)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if ev.Cost.String() != tt.cost {
				t.Errorf("cost = %s, want %s", ev.Cost, tt.cost)
			}
		})
	}
}

// TestOutOfWindowTimestampIsNotKept: a year-1 timestamp used to count as
// the record's timestamp while looking unset (the zero time).
func TestOutOfWindowTimestampIsNotKept(t *testing.T) {
	ev, err := parse(t, with("timestamp", `"0001-01-01T00:00:00Z"`))
	if err == nil || ev.HasTimestamp() {
		t.Fatalf("year 1: err %v, HasTimestamp %v; want refused and not kept", err, ev.HasTimestamp())
	}
	ev, _ = parse(t, validEvent)
	ev.Timestamp = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	var fe *schemas.FieldError
	if err := schemas.Validate(ev, knownGateways); !errors.As(err, &fe) || fe.Field != "timestamp" {
		t.Fatalf("Validate of year 9999: %v", err)
	}
}

func TestUnknownFieldsAreKept(t *testing.T) {
	ev, err := parse(t, with("region", `"eu"`))
	if err != nil {
		t.Fatalf("an added field must not be fatal: %v", err)
	}
	if len(ev.Extra) != 1 || ev.Extra[0].Name != "region" || string(ev.Extra[0].Value) != `"eu"` {
		t.Fatalf("Extra = %+v, want region kept verbatim", ev.Extra)
	}
	row := schemas.AppendEventRow(nil, ev, schemas.Transform(ev), schemas.LoadMeta{LoadID: "l1", Source: "test", IngestedAt: time.Unix(0, 0)})
	var m map[string]any
	if err := json.Unmarshal(row, &m); err != nil {
		t.Fatalf("row is not JSON: %v\n%s", err, row)
	}
	if m["extra"] != `{"region":"eu"}` {
		t.Errorf("extra column = %v", m["extra"])
	}
}

func TestDecimal(t *testing.T) {
	for _, s := range []string{"0", "1", "0.5", "0.004215", "123456789.123456789", "9223372036.854775807"} {
		d, err := schemas.ParseDecimal(s)
		if err != nil || d.String() != s {
			t.Errorf("ParseDecimal(%q) = %v, %v; String %q", s, d, err, d.String())
		}
	}
	for _, s := range []string{"", ".5", "5.", "1e3", "0x10", "9223372036.854775808", "1.0000000001"} {
		if _, err := schemas.ParseDecimal(s); err == nil {
			t.Errorf("ParseDecimal(%q) accepted", s)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"plain", "quote\" back\\ nl\n tab\t ctl\x01", "ünï😀", "bad\xffutf8"} {
		b := schemas.AppendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, b, err)
		}
		if !strings.Contains(s, "\xff") && got != s {
			t.Errorf("round trip %q -> %q", s, got)
		}
	}
}

// decodeAll counts valid and invalid records of a generated file.
func decodeAll(t *testing.T, data []byte, format schemas.Format, gz bool, gateways schemas.GatewaySet) (valid, invalid int, rules map[string]int) {
	t.Helper()
	dec, err := schemas.NewDecoder(bytes.NewReader(data), format, gz)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	rules = map[string]int{}
	var ev schemas.Event
	for {
		err := dec.Next(&ev)
		if errors.Is(err, io.EOF) {
			return
		}
		raw := dec.Raw()
		if err == nil {
			err = schemas.Validate(&ev, gateways)
		}
		var fe *schemas.FieldError
		switch {
		case err == nil:
			valid++
			if len(raw) == 0 {
				t.Fatal("valid record without raw text")
			}
		case errors.As(err, &fe):
			invalid++
			rules[fe.Field]++
		default:
			t.Fatalf("stream error after %d records: %v", valid+invalid, err)
		}
	}
}

func TestDecodersAgreeAcrossFormats(t *testing.T) {
	const n = 3000
	const seed = 7
	gateways := schemas.GatewaySet{}
	for _, id := range ktsim.GatewayIDs(seed) {
		gateways[id] = true
	}
	var first [2]int
	for i, format := range []schemas.Format{schemas.FormatJSON, schemas.FormatNDJSON, schemas.FormatCSV} {
		for _, gz := range []bool{false, true} {
			var buf bytes.Buffer
			if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: n, Format: string(format), Gzip: gz, Seed: seed, InvalidRate: 0.05}); err != nil {
				t.Fatal(err)
			}
			valid, invalid, rules := decodeAll(t, buf.Bytes(), format, gz, gateways)
			if valid+invalid != n {
				t.Fatalf("%s gzip=%v: %d+%d records, want %d", format, gz, valid, invalid, n)
			}
			if invalid < n/50 || len(rules) < 5 {
				t.Errorf("%s gzip=%v: %d invalid over %v; the fixture breaks every rule", format, gz, invalid, rules)
			}
			if i == 0 && !gz {
				first = [2]int{valid, invalid}
			} else if [2]int{valid, invalid} != first {
				t.Errorf("%s gzip=%v: %d valid/%d invalid, json gave %v", format, gz, valid, invalid, first)
			}
		}
	}
}

func TestDecoderStreamErrors(t *testing.T) {
	tests := []struct {
		name   string
		format schemas.Format
		data   string
	}{
		{"json not an array", schemas.FormatJSON, `{"id":1}`},
		{"json truncated", schemas.FormatJSON, `[` + validEvent + `,{"id":"x"`},
		{"json garbage between", schemas.FormatJSON, `[` + validEvent + ` x ` + validEvent + `]`},
		// An empty element is not JSON; quarantining it would count a
		// record the export's row_count may not hold.
		{"json empty first element", schemas.FormatJSON, `[,`},
		{"json empty middle element", schemas.FormatJSON, `[a,,b]`},
		{"json empty last element", schemas.FormatJSON, `[` + validEvent + `,]`},
		{"json empty element after valid", schemas.FormatJSON, `[` + validEvent + `, ,` + validEvent + `]`},
		{"csv no header", schemas.FormatCSV, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec, err := schemas.NewDecoder(strings.NewReader(tt.data), tt.format, false)
			if err != nil {
				return // refused at open: a clear error, fine
			}
			var ev schemas.Event
			for i := 0; i < 10; i++ {
				err := dec.Next(&ev)
				var fe *schemas.FieldError
				if err != nil && !errors.As(err, &fe) {
					if errors.Is(err, io.EOF) {
						t.Fatalf("broken stream ended cleanly")
					}
					return
				}
				if fe != nil && len(dec.Raw()) == 0 {
					t.Fatalf("a record with no text: %v", fe)
				}
			}
			t.Fatal("no stream error")
		})
	}
}

func TestNDJSONBadLineIsOneRecord(t *testing.T) {
	data := validEvent + "\n{broken\n\n" + validEvent + "\n"
	valid, invalid, _ := decodeAll(t, []byte(data), schemas.FormatNDJSON, false, knownGateways)
	if valid != 2 || invalid != 1 {
		t.Fatalf("valid %d invalid %d, want 2 and 1", valid, invalid)
	}
}

func TestJSONTextStringMatchesGeneralEncoder(t *testing.T) {
	for _, text := range []string{`{"a":"b"}`, `{"q":"say \"hi\"","p":"c:\\dir","n":null,"u":"ünï"}`, `[1,2,{"x":[]}]`, "{\"ctl\":\"\x01\"}", "{\"bad\":\"\xff\"}"} {
		ev := schemas.Event{ID: "x", Metadata: []byte(text)}
		row := schemas.AppendEventRow(nil, &ev, schemas.Derived{}, schemas.LoadMeta{})
		var m map[string]any
		if err := json.Unmarshal(row, &m); err != nil {
			t.Fatalf("%q: row is not JSON: %v", text, err)
		}
		want := text
		if strings.Contains(text, "\xff") {
			want = strings.ReplaceAll(text, "\xff", "\ufffd")
		}
		if m["metadata"] != want {
			t.Errorf("metadata %q, want %q", m["metadata"], want)
		}
	}
}

// TestJSONScannerEscapesAcrossReads feeds an array one byte per Read, so
// every escape sequence and quote straddles a buffer refill.
func TestJSONScannerEscapesAcrossReads(t *testing.T) {
	tricky := with("user", `"a\\\\\"b\\\\"`) // a\\"b\\ : escaped quote after an even run, string ending in backslashes
	data := "[" + tricky + " , " + validEvent + "]"
	dec, err := schemas.NewDecoder(iotest.OneByteReader(strings.NewReader(data)), schemas.FormatJSON, false)
	if err != nil {
		t.Fatal(err)
	}
	var ev schemas.Event
	err = dec.Next(&ev)
	if raw := dec.Raw(); err != nil || string(raw) != tricky || ev.User != `a\\"b\\` {
		t.Fatalf("first element: %q (user %q) %v", raw, ev.User, err)
	}
	if err = dec.Next(&ev); err != nil || string(dec.Raw()) != validEvent {
		t.Fatalf("second element: %q %v", dec.Raw(), err)
	}
	if err = dec.Next(&ev); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

// The memo gives what Transform gives, for events it has seen and not.
func TestKeyMemoTransformsAsTransform(t *testing.T) {
	var m schemas.KeyMemo
	for _, raw := range []string{validEvent, with("user", `"bo@acme.example"`), with("provider", `"azure_openai"`), validEvent} {
		ev, err := parse(t, raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Transform(ev), schemas.Transform(ev); got != want {
			t.Errorf("memo %+v, Transform %+v", got, want)
		}
	}
}
