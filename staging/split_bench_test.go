package staging_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
)

type discardSink struct{}

func (discardSink) Create(string) (io.WriteCloser, error) { return nopCloser{io.Discard}, nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// BenchmarkSplit measures decode → validate → transform → encode per
// format on an in-memory file; cmd/ktbench does the same at 1M events with
// peak memory.
func BenchmarkSplit(b *testing.B) {
	const events = 20_000
	gateways := schemas.GatewaySet{}
	for _, id := range ktsim.GatewayIDs(3) {
		gateways[id] = true
	}
	for _, format := range []string{"json", "ndjson", "csv"} {
		var buf bytes.Buffer
		if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: events, Format: format, Seed: 3, InvalidRate: 0.01}); err != nil {
			b.Fatal(err)
		}
		b.Run(format, func(b *testing.B) {
			b.SetBytes(int64(buf.Len()))
			for b.Loop() {
				dec, err := schemas.NewDecoder(bytes.NewReader(buf.Bytes()), schemas.Format(format), false)
				if err != nil {
					b.Fatal(err)
				}
				sp, err := staging.NewSplitter(staging.SplitOptions{LoadID: "bench", Source: "export", ChunkRows: 50_000, Gateways: gateways, IngestedAt: time.Now()}, discardSink{})
				if err != nil {
					b.Fatal(err)
				}
				if err := sp.Add(dec); err != nil {
					b.Fatal(err)
				}
				if _, err := sp.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
