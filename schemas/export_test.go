package schemas

import "io"

// NewReferenceDecoder is NewDecoderLimits without the schema-specific
// scanner: every JSON record goes through fastjson, as before it existed.
// The differential fuzz targets hold the fast decoder to it.
func NewReferenceDecoder(r io.Reader, format Format, gzipped bool, lim Limits) (*Decoder, error) {
	return newDecoder(r, format, gzipped, lim, false)
}

// FastParse exposes fastParse to FuzzFastParse.
func (ps *Parser) FastParse(b []byte, ev *Event) (int, bool) { return ps.fastParse(b, ev) }

// FastRecords returns how many records the schema-specific scanner decoded.
func (d *Decoder) FastRecords() int64 { return d.fastN }
