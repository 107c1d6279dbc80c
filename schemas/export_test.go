package schemas

import "io"

// NewReferenceDecoder is NewDecoderLimits without the schema-specific
// scanner: every JSON record goes through fastjson, as before it existed.
// The differential fuzz targets hold the fast decoder to it.
func NewReferenceDecoder(r io.Reader, format Format, gzipped bool, lim Limits) (*Decoder, error) {
	return newDecoder(r, format, gzipped, lim, false)
}
