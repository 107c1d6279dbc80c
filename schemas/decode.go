package schemas

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

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
	index  int64
	lim    Limits
	over   oversize
	big    bool     // the current record was too large
	bigRec Oversize // its size and hash
	fastN  int64    // records fastParse decoded (the rest took fastjson's path)
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
	if err == nil || isFieldError(err) {
		d.index++
	}
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

// TooLarge returns the size and sha256 of the whole current record when
// Next skipped it for exceeding MaxRecordBytes (rule RuleTooLarge).
func (d *Decoder) TooLarge() (Oversize, bool) {
	return d.bigRec, d.big
}

// Records returns how many records Next has returned so far.
func (d *Decoder) Records() int64 { return d.index }

// Close releases the gzip reader, if any; it does not close the source.
func (d *Decoder) Close() error {
	if d.closer != nil {
		return d.closer.Close()
	}
	return nil
}

func isFieldError(err error) bool {
	var fe *FieldError
	return errors.As(err, &fe)
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

// arrayScanner splits a top-level JSON array into its elements' bytes
// without decoding them, so each element is parsed once, by Parser.
type arrayScanner struct {
	r       io.Reader
	buf     []byte
	pos     int // next unread byte in buf
	started bool
	done    bool
	eof     bool
	max     int       // MaxRecordBytes
	over    *oversize // a too-large element, while it is skipped
	big     bool      // the last element was too large (over holds it)
	fast    bool      // try fastParse first
}

// fill reads more bytes after moving buf[keep:] to the front, so the byte
// at keep is at 0 afterwards.
func (s *arrayScanner) fill(keep int) error {
	if s.eof {
		return io.ErrUnexpectedEOF
	}
	n := copy(s.buf[:cap(s.buf)], s.buf[keep:])
	s.buf = s.buf[:n]
	s.pos -= keep
	if len(s.buf) == cap(s.buf) {
		grown := make([]byte, len(s.buf), 2*cap(s.buf))
		copy(grown, s.buf)
		s.buf = grown
	}
	m, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
	s.buf = s.buf[:len(s.buf)+m]
	if errors.Is(err, io.EOF) {
		s.eof = true
		if m == 0 {
			return io.ErrUnexpectedEOF
		}
	} else if err != nil {
		return fmt.Errorf("read json array: %w", err)
	}
	return nil
}

// skipSpace advances past white space and returns the next byte.
func (s *arrayScanner) skipSpace() (byte, error) {
	for {
		for s.pos < len(s.buf) {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, nil
			}
		}
		if err := s.fill(s.pos); err != nil {
			return 0, err
		}
	}
}

// toElement moves pos to the start of the next element, past the array's
// opening bracket or a comma; io.EOF at the closing bracket.
func (s *arrayScanner) toElement() error {
	if s.done {
		return io.EOF
	}
	c, err := s.skipSpace()
	if err != nil {
		if !s.started && errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("json export: empty file, want an array")
		}
		return fmt.Errorf("json export: %w", err)
	}
	if !s.started {
		if c != '[' {
			return fmt.Errorf("json export: starts with %q, want '['", c)
		}
		s.started = true
		s.pos++
		if c, err = s.skipSpace(); err != nil {
			return fmt.Errorf("json export: %w", err)
		}
		switch c {
		case ']':
			s.done = true
			return io.EOF
		case ',':
			return errEmptyElement
		}
		return nil
	}
	switch c {
	case ']':
		s.done = true
		return io.EOF
	case ',':
		s.pos++
		if c, err = s.skipSpace(); err != nil {
			return fmt.Errorf("json export: %w", err)
		}
		if c == ',' || c == ']' {
			return errEmptyElement
		}
		return nil
	default:
		return fmt.Errorf("json export: unexpected %q between elements", c)
	}
}

// errEmptyElement refuses "[,", "[a,,b]" and "[a,]". Such a file is not
// JSON, and whether its writer counted the gap as a record is unknowable,
// so quarantining it would make up a record the export's row_count may
// not hold: the stream is refused whole instead (not retryable).
var errEmptyElement = errors.New("json export: empty array element (a comma after '[' or another comma, or before ']'): not valid JSON")

// maxGuesses bounds the end guesses per element before the exact scan.
const maxGuesses = 4

// nextParsed returns the next element and, when it could, its parsed
// value, or filled when fastParse decoded it into ev already (an object
// whose end, and the ',' or ']' after it, are in the buffer). Most elements are objects laid out so that the first '}' followed
// by ',' or ']' ends them: that slice is handed to the parser, and since a
// complete JSON value is never a proper prefix of another, a successful
// parse proves the guess. Otherwise the exact scanner finds the end, and
// the caller parses (or reports) the element itself.
func (s *arrayScanner) nextParsed(p *Parser, ev *Event) ([]byte, *fastjson.Value, bool, error) {
	s.big = false
	if err := s.toElement(); err != nil {
		return nil, nil, false, err
	}
	start := s.pos
	if s.fast && start < len(s.buf) && s.buf[start] == '{' {
		if n, ok := p.fastParse(s.buf[start:], ev); ok && n <= s.max {
			end := start + n
			next := skipWhite(s.buf, end)
			if next < len(s.buf) && (s.buf[next] == ',' || s.buf[next] == ']') {
				s.pos = end
				return s.buf[start:end], nil, true, nil
			}
		}
	}
	if start < len(s.buf) && s.buf[start] == '{' {
		from := start
		for guess := 0; guess < maxGuesses; guess++ {
			k := bytes.IndexByte(s.buf[from:], '}')
			if k < 0 {
				break
			}
			end := from + k + 1
			next := end
			for next < len(s.buf) && (s.buf[next] == ' ' || s.buf[next] == '\n' || s.buf[next] == '\r' || s.buf[next] == '\t') {
				next++
			}
			if next < len(s.buf) && (s.buf[next] == ',' || s.buf[next] == ']') && end-start <= s.max {
				if v, err := p.p.ParseBytes(s.buf[start:end]); err == nil {
					s.pos = end
					return s.buf[start:end], v, false, nil
				}
			}
			from = end
		}
	}
	raw, err := s.element()
	return raw, nil, false, err
}

// element returns the bytes of the JSON value starting at pos, tracking
// nesting and strings so commas and brackets inside do not end it. An
// element over max bytes is not kept: once it passes max it is hashed
// and dropped as it is scanned, and element returns nil with big set.
func (s *arrayScanner) element() ([]byte, error) {
	start := s.pos // first byte kept (or, when big, not yet hashed)
	depth := 0
	inString, escaped := false, false
	for {
		for s.pos < len(s.buf) {
			if inString {
				// String bodies are most of an event's bytes. The closing
				// quote is the next quote after an even run of backslashes:
				// one fast search, then a short look back. A segment starts
				// where no backslash is pending (escaped carries an odd run
				// across a refill).
				if escaped {
					escaped = false
					s.pos++
					continue
				}
				seg := s.buf[s.pos:]
				q := bytes.IndexByte(seg, '"')
				if q < 0 {
					escaped = trailingBackslashes(seg)%2 == 1
					s.pos = len(s.buf)
					continue
				}
				s.pos += q + 1
				if trailingBackslashes(seg[:q])%2 == 0 {
					inString = false
				}
				continue
			}
			c := s.buf[s.pos]
			s.pos++
			switch {
			case c == '"':
				inString = true
			case c == '{' || c == '[':
				depth++
			case depth == 0 && c == ']':
				// The array's end after a scalar element.
				s.pos--
				return s.end(start), nil
			case c == '}' || c == ']':
				depth--
				if depth < 0 {
					return nil, fmt.Errorf("json export: unbalanced %q", c)
				}
				if depth == 0 {
					return s.end(start), nil
				}
			case depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r'):
				// A scalar element ends at the separator.
				s.pos--
				return s.end(start), nil
			}
		}
		keep := start
		switch {
		case s.big:
			s.over.add(s.buf[start:s.pos])
			keep = s.pos
		case s.pos-start > s.max:
			s.over.start(s.buf[start:s.pos])
			s.big, keep = true, s.pos
		}
		if err := s.fill(keep); err != nil {
			return nil, fmt.Errorf("json export: truncated element: %w", err)
		}
		start = 0
	}
}

// end finishes the element that started at start and ends at pos.
func (s *arrayScanner) end(start int) []byte {
	switch {
	case s.big:
		s.over.add(s.buf[start:s.pos])
		return nil
	case s.pos-start > s.max:
		s.over.start(s.buf[start:s.pos])
		s.big = true
		return nil
	}
	return s.buf[start:s.pos]
}

// trailingBackslashes counts the backslashes that end b.
func trailingBackslashes(b []byte) int {
	n := 0
	for i := len(b) - 1; i >= 0 && b[i] == '\\'; i-- {
		n++
	}
	return n
}

// csvDecoder reads the contract's CSV: a header row of field names, then
// one event per row with JSON text in the array and object cells.
type csvDecoder struct {
	r      *csv.Reader
	lines  *csvLines
	header []string
	ps     Parser
	row    []string // the current row (the reader reuses it)
	raw    []byte
}

func newCSVDecoder(r io.Reader, max int, over *oversize) (*csvDecoder, error) {
	lines := &csvLines{src: bufio.NewReaderSize(r, 256<<10), max: max, over: over}
	cr := csv.NewReader(lines)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if lines.big {
		return nil, fmt.Errorf("csv export: header row over %d bytes", max)
	}
	lines.reset()
	if err != nil {
		return nil, fmt.Errorf("csv export: read header: %w", err)
	}
	return &csvDecoder{r: cr, lines: lines, header: append([]string(nil), header...)}, nil
}

func (c *csvDecoder) next(ev *Event) ([]byte, error) {
	row, err := c.r.Read()
	big := c.lines.big
	c.lines.reset()
	if big {
		var pe *csv.ParseError
		if err == nil || errors.Is(err, io.EOF) || errors.As(err, &pe) {
			return nil, errCut // the caller reports the record as too large
		}
		return nil, err
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) && !errors.Is(pe.Err, csv.ErrQuote) && !errors.Is(pe.Err, csv.ErrBareQuote) {
			return nil, fmt.Errorf("csv export: %w", err)
		}
		if errors.As(err, &pe) {
			// A quoting error spoils one row; the reader resynchronises at
			// the next line.
			return []byte(strconv.Quote(err.Error())), fieldErr("(record)", "must be valid CSV: "+pe.Err.Error())
		}
		return nil, err
	}
	ev.reset()
	c.row = row
	if len(row) != len(c.header) {
		return c.renderRaw(), fieldErr("(record)", fmt.Sprintf("must have %d cells like the header, has %d", len(c.header), len(row)))
	}
	for i, cell := range row {
		if ferr := c.setCell(ev, c.header[i], cell); ferr != nil {
			return c.renderRaw(), ferr
		}
	}
	return nil, nil
}

// errCut says csvLines cut the record for its size.
var errCut = errors.New("record cut")

// csvLines stands between the source and csv.Reader. It hands out at
// most one line per Read, so csv.Reader (and its buffer) never holds
// bytes past the line that ends the current record, and the decoder
// resets it after each record. A record that grows past max bytes is cut
// there: the rest of it is hashed and skipped up to the first line end
// after an even number of quotes (in RFC 4180 quotes come in pairs
// within a record, so that is where the record ends), and csv.Reader is
// given an end of stream to finish it; the next Read goes on with the
// next record.
type csvLines struct {
	src     *bufio.Reader
	max     int
	rec     []byte // the current record's bytes handed out (at most max)
	pending []byte // the rest of the line read last, not handed out yet
	quotes  int    // quotes in the current record so far
	over    *oversize
	big     bool // the current record was cut
	skipped bool // its rest is skipped
}

func (l *csvLines) reset() {
	l.rec, l.quotes, l.big, l.skipped = l.rec[:0], 0, false, false
}

func (l *csvLines) Read(p []byte) (int, error) {
	if l.big {
		if !l.skipped {
			if err := l.skip(); err != nil {
				return 0, err
			}
			l.skipped = true
		}
		return 0, io.EOF
	}
	if len(l.pending) == 0 {
		line, err := l.src.ReadSlice('\n')
		if len(line) == 0 {
			return 0, err // io.EOF or a read error
		}
		l.pending = line // valid until the next ReadSlice, which waits until it is handed out
	}
	n := min(len(p), len(l.pending))
	cut := n > l.max-len(l.rec)
	if cut {
		n = l.max - len(l.rec)
	}
	n = copy(p, l.pending[:n])
	if len(l.rec)+n > cap(l.rec) && len(l.rec)+n > 64<<10 {
		// Past typical rows, grow once to the limit rather than by steps.
		l.rec = append(make([]byte, 0, l.max), l.rec...)
	}
	l.rec = append(l.rec, p[:n]...)
	l.quotes += bytes.Count(p[:n], []byte{'"'})
	l.pending = l.pending[n:]
	if cut {
		l.over.start(l.rec)
		l.big = true
	}
	return n, nil
}

// skip hashes and drops the rest of a cut record.
func (l *csvLines) skip() error {
	for {
		if len(l.pending) == 0 {
			line, err := l.src.ReadSlice('\n')
			if len(line) == 0 {
				if errors.Is(err, io.EOF) {
					return nil // the record ran to the end of the file
				}
				return err
			}
			l.pending = line
		}
		i := bytes.IndexByte(l.pending, '\n')
		if i < 0 {
			i = len(l.pending) - 1
		}
		seg := l.pending[:i+1]
		l.quotes += bytes.Count(seg, []byte{'"'})
		l.over.add(seg)
		l.pending = l.pending[i+1:]
		if seg[len(seg)-1] == '\n' && l.quotes%2 == 0 {
			return nil
		}
	}
}

func (c *csvDecoder) renderRaw() []byte {
	c.raw = c.appendRaw(c.raw[:0], c.row)
	return c.raw
}

// appendRaw renders a row as a JSON object of header→cell, the raw text a
// quarantined CSV record keeps.
func (c *csvDecoder) appendRaw(b []byte, row []string) []byte {
	b = append(b, '{')
	for i, cell := range row {
		if i > 0 {
			b = append(b, ',')
		}
		name := "_extra_" + strconv.Itoa(i)
		if i < len(c.header) {
			name = c.header[i]
		}
		b = AppendJSONString(b, name)
		b = append(b, ':')
		b = AppendJSONString(b, cell)
	}
	return append(b, '}')
}

func (c *csvDecoder) setCell(ev *Event, name, cell string) *FieldError {
	switch name {
	case "id", "gateway_id", "user", "provider", "model", "decision", "timestamp":
		if cell == "" {
			return nil // missing: Validate says "is required"
		}
		return setStringField(ev, name, cell) // csv.Reader already made the string
	case "latency_ms", "input_tokens", "output_tokens":
		if cell == "" {
			return nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(cell), 10, 64)
		if err != nil {
			return fieldErr(name, "must be an integer")
		}
		setIntField(ev, name, n)
	case "cost":
		if cell == "" {
			return nil
		}
		d, err := ParseDecimal(cell)
		if err != nil {
			return fieldErr("cost", err.Error())
		}
		ev.Cost = d
		ev.present |= fCost
	case "policies_evaluated", "policies_triggered", "metadata":
		if cell == "" || cell == "null" {
			return nil
		}
		v, err := c.ps.p.Parse(cell)
		if err != nil {
			return fieldErr(name, "must hold JSON text")
		}
		return c.ps.setJSONField(ev, name, v)
	default:
		ev.Extra = append(ev.Extra, Field{Name: name, Value: AppendJSONString(nil, cell)})
	}
	return nil
}
