package schemas

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

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
