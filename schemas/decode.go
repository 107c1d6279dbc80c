package schemas

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/valyala/fastjson"
)

// Format is an export file format of the contract.
type Format string

// The contract's export formats.
const (
	FormatJSON   Format = "json"
	FormatNDJSON Format = "ndjson"
	FormatCSV    Format = "csv"
)

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatJSON, FormatNDJSON, FormatCSV:
		return f, nil
	}
	return "", fmt.Errorf("format %q: must be json, ndjson or csv", s)
}

// Decoder reads events one record at a time from an export file or page, so
// memory stays flat whatever the file's size.
type Decoder struct {
	next   func(ev *Event) ([]byte, error)
	render func() []byte // renders the current record's raw text when next returned none
	raw    []byte
	closer io.Closer
	lim    Limits
	over   oversize
	big    bool     // the current record was too large
	bigRec Oversize // its size and hash
	fastN  int64    // records fastParse decoded (the rest took fastjson's path)
	// idParser serves RecordID.
	idParser fastjson.Parser
}

// NewDecoder returns a decoder for r in the given format, with
// DefaultLimits; gzipped says the bytes are gzip-compressed.
func NewDecoder(r io.Reader, format Format, gzipped bool) (*Decoder, error) {
	return NewDecoderLimits(r, format, gzipped, DefaultLimits)
}

// NewDecoderLimits is NewDecoder with the given limits. A UTF-8 byte
// order mark at the start of the (decompressed) stream is skipped.
func NewDecoderLimits(r io.Reader, format Format, gzipped bool, lim Limits) (*Decoder, error) {
	return newDecoder(r, format, gzipped, lim, true)
}

// newDecoder builds a decoder; fast says whether JSON records try the
// schema-specific scanner (fastParse) before fastjson. Without it, the
// decoder is the reference the differential fuzz targets compare with.
func newDecoder(r io.Reader, format Format, gzipped bool, lim Limits, fast bool) (*Decoder, error) {
	if err := lim.Check(); err != nil {
		return nil, err
	}
	d := &Decoder{lim: lim}
	if gzipped {
		in := &countingReader{r: r}
		zr, err := gzip.NewReader(in)
		if err != nil {
			return nil, fmt.Errorf("open gzip stream: %w", err)
		}
		d.closer = zr
		r = &inflateLimiter{r: zr, in: in, ratio: lim.MaxInflateRatio}
	}
	r = skipBOM(r)
	switch format {
	case FormatJSON:
		s := &arrayScanner{r: r, buf: make([]byte, 0, 256<<10), max: lim.MaxRecordBytes, over: &d.over, fast: fast}
		var p Parser
		d.next = func(ev *Event) ([]byte, error) {
			raw, v, filled, err := s.nextParsed(&p, ev)
			if err != nil {
				return nil, err
			}
			if filled {
				d.fastN++
				return raw, nil
			}
			if s.big {
				return d.tooLarge(ev)
			}
			if v == nil {
				return raw, p.Parse(raw, ev)
			}
			ev.reset()
			return raw, p.fill(v, ev)
		}
	case FormatNDJSON:
		br := bufio.NewReaderSize(r, 256<<10)
		var p Parser
		var line []byte
		d.next = func(ev *Event) ([]byte, error) {
			for {
				var big bool
				var err error
				line, big, err = d.readLine(br, line[:0])
				if err != nil {
					return nil, err
				}
				if big {
					return d.tooLarge(ev)
				}
				if raw := bytes.TrimSpace(line); len(raw) > 0 {
					if fast {
						if n, ok := p.fastParse(raw, ev); ok && n == len(raw) {
							d.fastN++
							return raw, nil
						}
					}
					return raw, p.Parse(raw, ev)
				}
			}
		}
	case FormatCSV:
		c, err := newCSVDecoder(r, lim.MaxRecordBytes, &d.over)
		if err != nil {
			return nil, err
		}
		d.next = func(ev *Event) ([]byte, error) {
			raw, err := c.next(ev)
			if err == errCut {
				return d.tooLarge(ev)
			}
			return raw, err
		}
		d.render = c.renderRaw
	default:
		return nil, fmt.Errorf("format %q: must be json, ndjson or csv", format)
	}
	return d, nil
}

// tooLarge ends a record that was skipped for its size; ev holds none of
// it (nor anything of the record before).
func (d *Decoder) tooLarge(ev *Event) ([]byte, error) {
	ev.reset()
	d.bigRec, d.big = d.over.finish(), true
	return d.over.prefix, tooLarge()
}

// Next decodes the next record into ev. A record that breaks a rule
// returns a *FieldError, and decoding may go on; io.EOF ends the stream;
// any other error means the stream itself is broken.
func (d *Decoder) Next(ev *Event) error {
	d.big = false
	raw, err := d.next(ev)
	d.raw = raw
	return err
}

// Raw returns the current record's raw text, valid until the next call
// to Next: the JSON object as read, or for CSV the row rendered as a JSON
// object of header → cell (rendered only when asked, since only
// quarantined records need it). For a too-large record it is the first
// TruncatedRawBytes of the text as read.
func (d *Decoder) Raw() []byte {
	if d.raw == nil && d.render != nil {
		d.raw = d.render()
	}
	return d.raw
}

// RecordID is RecordID(d.Raw()), reusing one parser for the decoder's
// records.
func (d *Decoder) RecordID() string {
	return recordID(&d.idParser, d.Raw())
}

// TooLarge returns the size and sha256 of the whole current record when
// Next skipped it for exceeding MaxRecordBytes (rule RuleTooLarge).
func (d *Decoder) TooLarge() (Oversize, bool) {
	return d.bigRec, d.big
}

// Close releases the gzip reader, if any; it does not close the source.
func (d *Decoder) Close() error {
	if d.closer != nil {
		return d.closer.Close()
	}
	return nil
}

// readLine appends one line (without its newline) to buf. The last line
// may lack a newline. A line over MaxRecordBytes (its newline included)
// is not kept: it is hashed as it is skipped, and big reports it.
func (d *Decoder) readLine(br *bufio.Reader, buf []byte) (line []byte, big bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !big && len(buf)+len(chunk) > d.lim.MaxRecordBytes {
			d.over.start(buf)
			buf, big = buf[:0], true
		}
		if big {
			d.over.add(chunk)
		} else {
			buf = append(buf, chunk...)
		}
		switch {
		case err == nil && big:
			return nil, true, nil
		case err == nil:
			return buf[:len(buf)-1], false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && (len(buf) > 0 || big):
			return buf, big, nil
		default:
			return nil, false, err
		}
	}
}
