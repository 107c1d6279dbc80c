package schemas_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/schemas"
)

// fillReader yields n bytes of a repeated pattern without holding them.
type fillReader struct {
	block []byte // the pattern repeated, a whole number of times
	n     int64
	off   int
}

func newFill(pattern string, n int64) *fillReader {
	return &fillReader{block: bytes.Repeat([]byte(pattern), 1+(64<<10)/len(pattern)), n: n}
}

func (f *fillReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, io.EOF
	}
	m := 0
	for m < len(p) && f.n > 0 {
		c := copy(p[m:min(len(p), m+int(min(f.n, int64(len(f.block)-f.off))))], f.block[f.off:])
		m += c
		f.n -= int64(c)
		f.off = (f.off + c) % len(f.block)
	}
	return m, nil
}

// bigRecord is a record of about size bytes: head, a filler, tail.
type bigRecord struct {
	head, fill, tail string
	size             int64
}

func (b bigRecord) reader() io.Reader {
	n := b.size - int64(len(b.head)+len(b.tail))
	n -= n % int64(len(b.fill)) // whole patterns, so quotes stay paired
	return io.MultiReader(strings.NewReader(b.head), newFill(b.fill, n), strings.NewReader(b.tail))
}

func (b bigRecord) sum(t *testing.T) ([32]byte, int64) {
	h := sha256.New()
	n, err := io.Copy(h, b.reader())
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	h.Sum(s[:0])
	return s, n
}

// csvOf returns the header line and the first row of a generated CSV
// export with one valid event.
func csvOf(t *testing.T) (header, row string, gateways schemas.GatewaySet) {
	var buf bytes.Buffer
	if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: 1, Format: "csv", Seed: 5}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(buf.String(), "\n")
	gateways = schemas.GatewaySet{}
	for _, id := range ktsim.GatewayIDs(5) {
		gateways[id] = true
	}
	return lines[0], lines[1], gateways
}

// TestTooLargeRecordIsSkippedNotHeld feeds a 40 MiB record between two
// valid ones in every format: it comes back as one "record too large"
// field error with a short raw text and the size and sha256 of the whole
// record, the records after it still decode, and decoding allocates a
// small fraction of the record's size.
func TestTooLargeRecordIsSkippedNotHeld(t *testing.T) {
	const size = 40 << 20
	csvHeader, csvRow, csvGateways := csvOf(t)
	tests := []struct {
		format   schemas.Format
		before   string
		big      bigRecord
		after    string
		gateways schemas.GatewaySet
	}{
		{schemas.FormatNDJSON, validEvent + "\n",
			bigRecord{head: `{"id":"x","metadata":{"pad":"`, fill: `abc\"{}[],`, tail: `"}}` + "\n", size: size},
			validEvent + "\n", knownGateways},
		{schemas.FormatJSON, "[" + validEvent + ",",
			bigRecord{head: `{"id":"x","metadata":{"pad":[`, fill: `"a\"]}",{},`, tail: `1]}}`, size: size},
			" ," + validEvent + "]", knownGateways},
		{schemas.FormatCSV, csvHeader + csvRow,
			bigRecord{head: `x,"`, fill: "ab\"\"c,\r\n", tail: "\",1\r\n", size: size},
			csvRow, csvGateways},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			wantSum, wantSize := tt.big.sum(t)
			src := io.MultiReader(strings.NewReader(tt.before), tt.big.reader(), strings.NewReader(tt.after))
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			dec, err := schemas.NewDecoder(src, tt.format, false)
			if err != nil {
				t.Fatal(err)
			}
			var ev schemas.Event
			var got []string
			for {
				err := dec.Next(&ev)
				if errors.Is(err, io.EOF) {
					break
				}
				if err == nil {
					err = schemas.Validate(&ev, tt.gateways)
				}
				var fe *schemas.FieldError
				switch {
				case err == nil:
					got = append(got, "valid")
				case errors.As(err, &fe) && fe.Rule == schemas.RuleTooLarge:
					got = append(got, "too large")
					over, ok := dec.TooLarge()
					if !ok || over.Size != wantSize || over.SHA256 != wantSum {
						t.Errorf("TooLarge = %d bytes %x %v, want %d bytes %x", over.Size, over.SHA256[:4], ok, wantSize, wantSum[:4])
					}
					if raw := dec.Raw(); len(raw) == 0 || len(raw) > schemas.TruncatedRawBytes || !strings.HasPrefix(tt.big.head, string(raw[:min(len(raw), len(tt.big.head))])) {
						t.Errorf("raw text of %d bytes %.40q, want a prefix of the record of at most %d", len(raw), raw, schemas.TruncatedRawBytes)
					}
				default:
					t.Fatalf("after %v: %v", got, err)
				}
			}
			runtime.ReadMemStats(&ms1)
			if want := []string{"valid", "too large", "valid"}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("records %v, want %v", got, want)
			}
			// The limit is 1 MiB; csv.Reader's own buffers take ~5 MiB to
			// reach it.
			t.Logf("decoding allocated %.1f MiB", float64(ms1.TotalAlloc-ms0.TotalAlloc)/(1<<20))
			if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > size/4 {
				t.Errorf("decoding allocated %d MiB for a %d MiB record: it was held", alloc>>20, size>>20)
			}
		})
	}
}

// TestRecordLimitIsExact: a record of exactly the limit decodes, one more
// byte is too large (the limit counts an NDJSON line with its newline).
// "extra" spaces make the line longer but keep it the same event.
func TestRecordLimitIsExact(t *testing.T) {
	event := with("metadata", `{"pad":"`+strings.Repeat("p", 1500)+`"}`)
	lim := schemas.Limits{MaxRecordBytes: len(event) + 1, MaxInflateRatio: 100}
	for extra, want := range map[int]string{0: "", 1: schemas.RuleTooLarge} {
		line := event[:len(event)-1] + strings.Repeat(" ", extra) + "}\n"
		dec, err := schemas.NewDecoderLimits(strings.NewReader(line), schemas.FormatNDJSON, false, lim)
		if err != nil {
			t.Fatal(err)
		}
		var ev schemas.Event
		err = dec.Next(&ev)
		got := ""
		var fe *schemas.FieldError
		if errors.As(err, &fe) {
			got = fe.Rule
		} else if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%d bytes over the limit: rule %q, want %q", extra, got, want)
		}
		if raw := dec.Raw(); !strings.HasPrefix(line, string(raw)) || len(raw) == 0 {
			t.Errorf("%d bytes over the limit: raw text %.40q, want a prefix of the line", extra, raw)
		}
	}
}

// TestGzipBombIsRefused: 200 MiB of white space gzip to about 200 KiB (a
// ratio near 1000); the decoder refuses the stream with a clear
// error once it inflates past the limit instead of reading it all.
func TestGzipBombIsRefused(t *testing.T) {
	// gzip readers read concatenated members as one stream: "[", then a
	// member of 1 MiB of white space 200 times.
	member := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	buf := bytes.NewBuffer(member([]byte("[")))
	buf.Write(bytes.Repeat(member(bytes.Repeat([]byte(" "), 1<<20)), 200))
	dec, err := schemas.NewDecoder(bytes.NewReader(buf.Bytes()), schemas.FormatJSON, true)
	if err != nil {
		t.Fatal(err)
	}
	var ev schemas.Event
	err = dec.Next(&ev)
	if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "gzip bomb") {
		t.Fatalf("bomb of %d compressed bytes: %v, want a refusal", buf.Len(), err)
	}
}

// TestBOMIsSkipped: a UTF-8 byte order mark before the first byte does not
// spoil the CSV header (every row was quarantined) nor the first record.
func TestBOMIsSkipped(t *testing.T) {
	gateways := schemas.GatewaySet{}
	for _, id := range ktsim.GatewayIDs(9) {
		gateways[id] = true
	}
	for _, format := range []schemas.Format{schemas.FormatCSV, schemas.FormatNDJSON, schemas.FormatJSON} {
		var buf bytes.Buffer
		if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: 50, Format: string(format), Seed: 9}); err != nil {
			t.Fatal(err)
		}
		valid, invalid, _ := decodeAll(t, append([]byte("\xEF\xBB\xBF"), buf.Bytes()...), format, false, gateways)
		if valid != 50 || invalid != 0 {
			t.Errorf("%s with a BOM: %d valid, %d invalid, want 50 valid", format, valid, invalid)
		}
	}
}
