package schemas_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/schemas"
)

// fuzzDecode checks that any input yields records, field errors or a
// stream error — never a panic, never a loop — and that every valid
// record encodes to a row.
func fuzzDecode(t *testing.T, data []byte, format schemas.Format) {
	// The smallest record cap, so inputs the fuzzer can make reach the
	// too-large paths.
	dec, err := schemas.NewDecoderLimits(bytes.NewReader(data), format, false, schemas.Limits{MaxRecordBytes: 1024, MaxInflateRatio: 100})
	if err != nil {
		return
	}
	var ev schemas.Event
	for i := 0; i <= len(data)+1; i++ {
		err := dec.Next(&ev)
		var fe *schemas.FieldError
		switch {
		case err == nil:
			if schemas.Validate(&ev, nil) == nil {
				row := schemas.AppendEventRow(nil, &ev, schemas.Transform(&ev), schemas.LoadMeta{})
				if !bytes.HasSuffix(row, []byte("}\n")) {
					t.Fatalf("bad row %q", row)
				}
			}
		case errors.As(err, &fe):
			if fe.Field == "" || fe.Rule == "" {
				t.Fatalf("field error without field or rule: %#v", fe)
			}
			if len(dec.Raw()) == 0 {
				t.Fatal("a refused record has no raw text for quarantine")
			}
			if over, big := dec.TooLarge(); big != (fe.Rule == schemas.RuleTooLarge) || big && (over.Size <= 1024 || len(dec.Raw()) > schemas.TruncatedRawBytes) {
				t.Fatalf("too large %v (%d bytes, raw %d) with rule %q", big, over.Size, len(dec.Raw()), fe.Rule)
			}
		default:
			return // EOF or a stream error ends the stream
		}
	}
	t.Fatalf("decoder did not end within %d records", len(data)+1)
}

// seedCorpus adds generated files; testdata/fuzz/<Name>/ holds the
// hand-made seeds and the crashers fuzzing found.
func seedCorpus(f *testing.F, format string) {
	var buf bytes.Buffer
	if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: 3, Format: format, Seed: 1, InvalidRate: 0.5}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(validEvent))
	f.Add([]byte("[" + validEvent + "]"))
	f.Add([]byte{})
}

func FuzzDecodeJSON(f *testing.F) {
	seedCorpus(f, "json")
	f.Add([]byte(`[1, "a", {"x":[{}]}, null]`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, data, schemas.FormatJSON) })
}

func FuzzDecodeNDJSON(f *testing.F) {
	seedCorpus(f, "ndjson")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, data, schemas.FormatNDJSON) })
}

func FuzzDecodeCSV(f *testing.F) {
	seedCorpus(f, "csv")
	f.Add([]byte("id,cost\n\"a,1\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, data, schemas.FormatCSV) })
}

// FuzzValidate feeds single objects through Parse and Validate.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(validEvent))
	f.Add([]byte(with("cost", `1e400`)))
	f.Add([]byte(with("timestamp", `"0000-00-00T00:00:00Z"`)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p schemas.Parser
		var ev schemas.Event
		err := p.Parse(raw, &ev)
		if err == nil {
			err = schemas.Validate(&ev, knownGateways)
		}
		var fe *schemas.FieldError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("non-field error %v", err)
		}
		if err == nil && ev.Cost < 0 {
			t.Fatal("negative cost validated")
		}
		if err == nil && !schemas.InTimestampWindow(ev.Timestamp) {
			t.Fatalf("timestamp %v outside the window validated", ev.Timestamp)
		}
	})
}
