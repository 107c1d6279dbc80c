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
}

// NewDecoder returns a decoder for r in the given format; gzipped says the
// bytes are gzip-compressed.
func NewDecoder(r io.Reader, format Format, gzipped bool) (*Decoder, error) {
	d := &Decoder{}
	if gzipped {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("open gzip stream: %w", err)
		}
		d.closer = zr
		r = zr
	}
	switch format {
	case FormatJSON:
		s := &arrayScanner{r: r, buf: make([]byte, 0, 256<<10)}
		var p Parser
		d.next = func(ev *Event) ([]byte, error) {
			raw, v, err := s.nextParsed(&p)
			if err != nil {
				return nil, err
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
				var err error
				line, err = readLine(br, line[:0])
				if err != nil {
					return nil, err
				}
				if raw := bytes.TrimSpace(line); len(raw) > 0 {
					return raw, p.Parse(raw, ev)
				}
			}
		}
	case FormatCSV:
		c, err := newCSVDecoder(r)
		if err != nil {
			return nil, err
		}
		d.next = c.next
		d.render = c.renderRaw
	default:
		return nil, fmt.Errorf("format %q: must be json, ndjson or csv", format)
	}
	return d, nil
}

// Next decodes the next record into ev. A record that breaks a rule
// returns a *FieldError, and decoding may go on; io.EOF ends the stream;
// any other error means the stream itself is broken.
func (d *Decoder) Next(ev *Event) error {
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
// quarantined records need it).
func (d *Decoder) Raw() []byte {
	if d.raw == nil && d.render != nil {
		d.raw = d.render()
	}
	return d.raw
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
// may lack a newline.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, nil
		default:
			return nil, err
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

func (s *arrayScanner) next() ([]byte, error) {
	if err := s.toElement(); err != nil {
		return nil, err
	}
	return s.element()
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
		if c == ']' {
			s.done = true
			return io.EOF
		}
		return nil
	}
	switch c {
	case ']':
		s.done = true
		return io.EOF
	case ',':
		s.pos++
		if _, err = s.skipSpace(); err != nil {
			return fmt.Errorf("json export: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("json export: unexpected %q between elements", c)
	}
}

// maxGuesses bounds the end guesses per element before the exact scan.
const maxGuesses = 4

// nextParsed returns the next element and, when it could, its parsed
// value. Most elements are objects laid out so that the first '}' followed
// by ',' or ']' ends them: that slice is handed to the parser, and since a
// complete JSON value is never a proper prefix of another, a successful
// parse proves the guess. Otherwise the exact scanner finds the end, and
// the caller parses (or reports) the element itself.
func (s *arrayScanner) nextParsed(p *Parser) ([]byte, *fastjson.Value, error) {
	if err := s.toElement(); err != nil {
		return nil, nil, err
	}
	start := s.pos
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
			if next < len(s.buf) && (s.buf[next] == ',' || s.buf[next] == ']') {
				if v, err := p.p.ParseBytes(s.buf[start:end]); err == nil {
					s.pos = end
					return s.buf[start:end], v, nil
				}
			}
			from = end
		}
	}
	raw, err := s.element()
	return raw, nil, err
}

// element returns the bytes of the JSON value starting at pos, tracking
// nesting and strings so commas and brackets inside do not end it.
func (s *arrayScanner) element() ([]byte, error) {
	start := s.pos
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
				return s.buf[start:s.pos], nil
			case c == '}' || c == ']':
				depth--
				if depth < 0 {
					return nil, fmt.Errorf("json export: unbalanced %q", c)
				}
				if depth == 0 {
					return s.buf[start:s.pos], nil
				}
			case depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r'):
				// A scalar element ends at the separator.
				s.pos--
				return s.buf[start:s.pos], nil
			}
		}
		if err := s.fill(start); err != nil {
			return nil, fmt.Errorf("json export: truncated element: %w", err)
		}
		start = 0
	}
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
	header []string
	ps     Parser
	row    []string // the current row (the reader reuses it)
	raw    []byte
}

func newCSVDecoder(r io.Reader) (*csvDecoder, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 256<<10))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv export: read header: %w", err)
	}
	return &csvDecoder{r: cr, header: append([]string(nil), header...)}, nil
}

func (c *csvDecoder) next(ev *Event) ([]byte, error) {
	row, err := c.r.Read()
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
