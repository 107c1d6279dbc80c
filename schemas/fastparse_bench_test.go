package schemas_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/schemas"
)

// BenchmarkDecode measures decoding alone (no validation, transform or
// encoding) with the schema-specific scanner and with the reference
// decoder it falls back to, on the same generated files, so their ratio
// comes from one run: go test ./schemas -bench Decode -count 5.
func BenchmarkDecode(b *testing.B) {
	const events = 20_000
	for _, format := range []schemas.Format{schemas.FormatJSON, schemas.FormatNDJSON} {
		var buf bytes.Buffer
		if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: events, Format: string(format), Seed: 3, InvalidRate: 0.01}); err != nil {
			b.Fatal(err)
		}
		for _, impl := range []struct {
			name string
			dec  func(io.Reader) (*schemas.Decoder, error)
		}{
			{"fast", func(r io.Reader) (*schemas.Decoder, error) {
				return schemas.NewDecoderLimits(r, format, false, schemas.DefaultLimits)
			}},
			{"reference", func(r io.Reader) (*schemas.Decoder, error) {
				return schemas.NewReferenceDecoder(r, format, false, schemas.DefaultLimits)
			}},
		} {
			b.Run(string(format)+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(buf.Len()))
				var ev schemas.Event
				for b.Loop() {
					dec, err := impl.dec(bytes.NewReader(buf.Bytes()))
					if err != nil {
						b.Fatal(err)
					}
					for dec.Next(&ev) != io.EOF {
					}
				}
				b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
