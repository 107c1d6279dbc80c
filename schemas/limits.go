package schemas

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
)

// Limits bound what a Decoder holds and reads, so a hostile or broken
// file costs bounded memory and time.
type Limits struct {
	// MaxRecordBytes caps one record's raw text (an NDJSON line, a JSON
	// array element, a CSV row with its line end). A bigger record is
	// never held whole: the decoder skips it while hashing it and returns
	// it as a *FieldError with rule RuleTooLarge, with the first
	// TruncatedRawBytes of its text as its raw text.
	MaxRecordBytes int
	// MaxInflateRatio caps a gzip stream's decompressed bytes at this many
	// times the compressed bytes read so far, plus InflateAllowance. At the
	// end of a staged export the compressed bytes read are the export's
	// size_bytes (the download checks them against its sha256). Past the
	// cap the stream is refused as a possible gzip bomb.
	MaxInflateRatio int64
}

// DefaultLimits are the limits of NewDecoder. A real event is 0.5–2 KB
// (its metadata object is the only unbounded part), so 1 MiB is ~500×
// any event seen and still a small allocation per decoder. JSON events
// compress 5–15× with gzip (ktsim's 1M NDJSON export: about 8×) and gzip
// cannot exceed ~1032×; 100× leaves room for very repetitive exports and
// stops a bomb once it inflated InflateAllowance plus 100× what it read
// (a 1 MB bomb: after ~75 MB, not 1 GB).
var DefaultLimits = Limits{MaxRecordBytes: 1 << 20, MaxInflateRatio: 100}

// InflateAllowance is decompressed bytes always allowed on top of the
// ratio, so a small file's header and first records never trip it.
const InflateAllowance = 64 << 20

// TruncatedRawBytes is how much of a too-large record's text is kept as
// its raw text: enough to see what it was.
const TruncatedRawBytes = 4 << 10

// RuleTooLarge is the quarantine rule of a record over MaxRecordBytes.
const RuleTooLarge = "record too large"

// Check reports a limit that cannot work.
func (l Limits) Check() error {
	if l.MaxRecordBytes < 1024 {
		return fmt.Errorf("max record bytes %d: must be at least 1024", l.MaxRecordBytes)
	}
	if l.MaxInflateRatio < 1 {
		return fmt.Errorf("max inflate ratio %d: must be at least 1", l.MaxInflateRatio)
	}
	return nil
}

// Oversize describes the current record when it was too large: its full
// size and the sha256 of its full text, which identifies it in quarantine
// although only a prefix is kept.
type Oversize struct {
	Size   int64
	SHA256 [32]byte
}

// oversize accumulates a too-large record while it is skipped.
type oversize struct {
	h      hash.Hash
	size   int64
	prefix []byte
}

// start begins a too-large record with the bytes seen so far.
func (o *oversize) start(seen []byte) {
	if o.h == nil {
		o.h = sha256.New()
	}
	o.h.Reset()
	o.size = 0
	o.prefix = o.prefix[:0]
	o.add(seen)
}

// add takes the record's next bytes; the first TruncatedRawBytes are kept.
func (o *oversize) add(b []byte) {
	if room := TruncatedRawBytes - len(o.prefix); room > 0 {
		o.prefix = append(o.prefix, b[:min(len(b), room)]...)
	}
	o.h.Write(b)
	o.size += int64(len(b))
}

func (o *oversize) finish() Oversize {
	var r Oversize
	r.Size = o.size
	o.h.Sum(r.SHA256[:0])
	return r
}

func tooLarge() *FieldError { return fieldErr("(record)", RuleTooLarge) }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// inflateLimiter stops a decompressed stream that grows past ratio× its
// compressed bytes (plus InflateAllowance).
type inflateLimiter struct {
	r     io.Reader
	in    *countingReader
	ratio int64
	out   int64
}

func (l *inflateLimiter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.out += int64(n)
	if l.out > InflateAllowance+l.ratio*l.in.n {
		return 0, fmt.Errorf("gzip stream inflates %d compressed bytes to over %d bytes, more than %d× (KTPIPE_MAX_INFLATE_RATIO) plus %d MiB: refused as a possible gzip bomb",
			l.in.n, l.out, l.ratio, InflateAllowance>>20)
	}
	return n, err
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// skipBOM drops a UTF-8 byte order mark at the start of r: some
// producers (spreadsheet tools, Windows exporters) write one, and it is
// not part of the first field's name or the first record.
func skipBOM(r io.Reader) io.Reader {
	head := make([]byte, len(utf8BOM))
	n, err := io.ReadFull(r, head)
	if err == nil && bytes.Equal(head, utf8BOM) {
		return r
	}
	// Anything else, a short file or a read error included, is read again
	// from r after the bytes taken, so r reports its own end or error.
	return io.MultiReader(bytes.NewReader(head[:n]), r)
}
