package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/valyala/fastjson"
)

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
