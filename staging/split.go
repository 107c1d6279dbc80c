package staging

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
)

// Chunk is one loadable piece of a load (declared in payload: the claim
// check a workflow carries).
type Chunk = payload.Chunk

// Manifest describes what a split produced (declared in payload).
type Manifest = payload.Manifest

// MalformedError says the source stream itself is broken (not one bad
// record, which is quarantined): retrying the same bytes cannot help.
type MalformedError struct {
	Record int64 // the record number where the stream broke
	Err    error
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("source broken at record %d: %v", e.Record, e.Err)
}

func (e *MalformedError) Unwrap() error { return e.Err }

// Sink creates chunk files.
type Sink interface {
	Create(key string) (io.WriteCloser, error)
}

// StoreSink is a Sink writing to store under one activity's context.
func StoreSink(ctx context.Context, store Store) Sink { return storeSink{ctx, store} }

type storeSink struct {
	ctx   context.Context
	store Store
}

func (s storeSink) Create(key string) (io.WriteCloser, error) { return s.store.Create(s.ctx, key) }

// SplitOptions configure a Splitter.
type SplitOptions struct {
	LoadID string
	Source string // export, pull, webhook
	// ChunkRows caps a chunk's valid rows and, apart, its quarantined
	// records: a chunk closes when either file holds ChunkRows lines.
	ChunkRows int
	// ChunkBytes caps each of a chunk's two files: a chunk closes once
	// either reaches it (0: DefaultChunkBytes).
	ChunkBytes int64
	// MaxRawBytes caps the raw text a quarantine row stores; a longer
	// text is cut with a marker giving its size and sha256 (0:
	// DefaultMaxRawBytes).
	MaxRawBytes int
	Gateways    schemas.GatewaySet
	IngestedAt  time.Time
	// Progress, when set, is called every ProgressEvery records.
	Progress      func(records int64)
	ProgressEvery int64
}

// DefaultChunkBytes bounds one chunk file, which is uploaded in one
// request: a normal chunk (50,000 rows of ~0.5 KB) is ~25 MB, so only
// chunks of unusually large records reach it.
const DefaultChunkBytes = 128 << 20

// DefaultMaxRawBytes is the default cap of a quarantine row's raw text:
// the default record cap (schemas.DefaultLimits), so every record the
// decoder keeps whole stays whole (and replayable) in quarantine, while a
// raised record cap cannot make rows that fail every load.
const DefaultMaxRawBytes = 1 << 20

// Splitter validates, transforms and encodes records into chunk files of
// at most ChunkRows rows, ChunkRows quarantined records and ChunkBytes
// per file each.
type Splitter struct {
	opts    SplitOptions
	sink    Sink
	man     Manifest
	unknown map[string]bool

	cur      *chunkFile
	curQ     *chunkFile
	ids      idSet
	hashes   map[[32]byte]struct{}
	row      []byte
	rawBuf   []byte // a truncated raw text
	ev       schemas.Event
	keys     schemas.KeyMemo
	meta     schemas.LoadMeta
	enc      *schemas.EventRowEncoder // rows of this load
	min, max time.Time                // event_date range of the current chunk
}

type chunkFile struct {
	w     io.WriteCloser
	bw    *bufio.Writer
	n     int64 // lines
	bytes int64
}

// ChunkKey and QuarantineKey name a load's chunk files. They are
// deterministic, so a retried split overwrites rather than adds.
func ChunkKey(loadID string, i int) string {
	return fmt.Sprintf("loads/%s/chunk-%05d.ndjson", loadID, i)
}

// QuarantineKey names the quarantine file of chunk i.
func QuarantineKey(loadID string, i int) string {
	return fmt.Sprintf("loads/%s/quarantine-%05d.ndjson", loadID, i)
}

// NewSplitter starts a split of one load.
func NewSplitter(opts SplitOptions, sink Sink) (*Splitter, error) {
	if err := CheckKey("loads/" + opts.LoadID); err != nil {
		return nil, fmt.Errorf("load id: %w", err)
	}
	if opts.ChunkRows <= 0 {
		return nil, fmt.Errorf("chunk rows %d: must be positive", opts.ChunkRows)
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.MaxRawBytes <= 0 {
		opts.MaxRawBytes = DefaultMaxRawBytes
	}
	meta := schemas.LoadMeta{LoadID: opts.LoadID, Source: opts.Source, IngestedAt: opts.IngestedAt}
	return &Splitter{
		opts:    opts,
		sink:    sink,
		man:     Manifest{LoadID: opts.LoadID},
		unknown: map[string]bool{},
		meta:    meta,
		enc:     schemas.NewEventRowEncoder(meta),
	}, nil
}

// Add consumes every record of dec. A broken stream stops with an error;
// bad records go to the quarantine file with their reason.
func (s *Splitter) Add(dec *schemas.Decoder) error {
	for {
		err := dec.Next(&s.ev)
		if errors.Is(err, io.EOF) {
			return nil
		}
		var fe *schemas.FieldError
		if err != nil && !errors.As(err, &fe) {
			return &MalformedError{Record: s.man.Records + 1, Err: err}
		}
		if err == nil {
			if verr := schemas.Validate(&s.ev, s.opts.Gateways); verr != nil {
				errors.As(verr, &fe)
			}
		}
		s.man.Records++
		if fe != nil {
			if err := s.quarantine(dec, fe); err != nil {
				return err
			}
		} else if err := s.write(); err != nil {
			return err
		}
		if s.opts.Progress != nil && s.opts.ProgressEvery > 0 && s.man.Records%s.opts.ProgressEvery == 0 {
			s.opts.Progress(s.man.Records)
		}
	}
}

func (s *Splitter) open() error {
	if s.cur != nil {
		return nil
	}
	i := len(s.man.Chunks)
	w, err := s.sink.Create(ChunkKey(s.opts.LoadID, i))
	if err != nil {
		return err
	}
	s.cur = &chunkFile{w: w, bw: bufio.NewWriterSize(w, 256<<10)}
	s.ids = newIDSet(s.opts.ChunkRows)
	s.hashes = map[[32]byte]struct{}{}
	s.min, s.max = time.Time{}, time.Time{}
	s.man.Chunks = append(s.man.Chunks, Chunk{Index: i, Key: ChunkKey(s.opts.LoadID, i)})
	return nil
}

func (s *Splitter) write() error {
	if err := s.open(); err != nil {
		return err
	}
	id, _ := schemas.ParseUUID(s.ev.ID) // validated above
	if !s.ids.add(id) {
		s.man.Resent++
		return nil
	}
	for _, f := range s.ev.Extra {
		s.unknown[f.Name] = true
	}
	d := s.keys.Transform(&s.ev)
	if s.min.IsZero() || d.EventDate.Before(s.min) {
		s.min = d.EventDate
	}
	if d.EventDate.After(s.max) {
		s.max = d.EventDate
	}
	s.row = s.enc.Append(s.row[:0], &s.ev, d)
	if _, err := s.cur.bw.Write(s.row); err != nil {
		return fmt.Errorf("write chunk: %w", err)
	}
	s.cur.n++
	s.cur.bytes += int64(len(s.row))
	s.man.Rows++
	return s.rollover(s.cur)
}

// rollover closes the chunk once f (one of its files) is full.
func (s *Splitter) rollover(f *chunkFile) error {
	if f.n >= int64(s.opts.ChunkRows) || f.bytes >= s.opts.ChunkBytes {
		return s.flush()
	}
	return nil
}

func (s *Splitter) quarantine(dec *schemas.Decoder, fe *schemas.FieldError) error {
	if err := s.open(); err != nil {
		return err
	}
	// The identity of a bad record is its id when it has one, so a resend
	// in another format or byte layout stays single; else the sha256 of
	// its whole raw text. A record the decoder skipped for its size has
	// only a prefix here, so its identity is the hash of its whole text,
	// which the decoder took as it went.
	raw := dec.Raw()
	size := int64(len(raw))
	var id string
	var textSum [32]byte
	if over, big := dec.TooLarge(); big {
		size, textSum = over.Size, over.SHA256
	} else {
		id = schemas.RecordID(raw)
		textSum = sha256.Sum256(raw)
	}
	sum := textSum
	if id != "" {
		sum = sha256.Sum256([]byte("id:" + id))
	}
	if _, dup := s.hashes[sum]; dup {
		s.man.Resent++
		return nil
	}
	s.hashes[sum] = struct{}{}
	if s.curQ == nil {
		c := &s.man.Chunks[len(s.man.Chunks)-1]
		c.QuarantineKey = QuarantineKey(s.opts.LoadID, c.Index)
		w, err := s.sink.Create(c.QuarantineKey)
		if err != nil {
			return err
		}
		s.curQ = &chunkFile{w: w, bw: bufio.NewWriter(w)}
	}
	if len(id) > 64 {
		id = id[:64]
	}
	if size > int64(len(raw)) || len(raw) > s.opts.MaxRawBytes {
		// A huge raw text would make the quarantine load fail on every
		// retry; keep a prefix, and say what was cut.
		s.rawBuf = TruncateRaw(s.rawBuf[:0], raw, s.opts.MaxRawBytes, size, textSum)
		raw = s.rawBuf
	}
	q := schemas.QuarantineRow{RecordHash: hex.EncodeToString(sum[:]), EventID: id, Field: fe.Field, Rule: fe.Rule, Raw: raw}
	if s.ev.HasTimestamp() {
		q.EventTimestamp = s.ev.Timestamp
	}
	s.row = schemas.AppendQuarantineRow(s.row[:0], q, s.meta)
	if _, err := s.curQ.bw.Write(s.row); err != nil {
		return fmt.Errorf("write quarantine: %w", err)
	}
	s.curQ.n++
	s.curQ.bytes += int64(len(s.row))
	s.man.Quarantined++
	return s.rollover(s.curQ)
}

// TruncateRaw appends to b at most max bytes of raw, cut at a UTF-8
// boundary, and a marker with the whole text's size and sha256:
// "…[ktpipe: raw text truncated, <size> bytes in all, sha256 <hex>]".
func TruncateRaw(b, raw []byte, max int, size int64, sum [32]byte) []byte {
	if len(raw) > max {
		// Do not split a character: back up to the start of the one cut.
		cut := max
		for cut > 0 && cut > max-utf8.UTFMax && !utf8.RuneStart(raw[cut]) {
			cut--
		}
		raw = raw[:cut]
	}
	b = append(b, raw...)
	b = append(b, "…[ktpipe: raw text truncated, "...)
	b = strconv.AppendInt(b, size, 10)
	b = append(b, " bytes in all, sha256 "...)
	b = hex.AppendEncode(b, sum[:])
	return append(b, ']')
}

// flush closes the current chunk's files and records their counts.
func (s *Splitter) flush() error {
	if s.cur == nil {
		return nil
	}
	c := &s.man.Chunks[len(s.man.Chunks)-1]
	for _, f := range []*chunkFile{s.cur, s.curQ} {
		if f == nil {
			continue
		}
		if err := f.bw.Flush(); err != nil {
			return fmt.Errorf("flush chunk %d: %w", c.Index, err)
		}
		if err := f.w.Close(); err != nil {
			return fmt.Errorf("close chunk %d: %w", c.Index, err)
		}
	}
	c.Rows = s.cur.n
	if s.curQ != nil {
		c.Quarantined = s.curQ.n
	}
	if !s.min.IsZero() {
		c.MinDate, c.MaxDate = s.min.Format(time.DateOnly), s.max.Format(time.DateOnly)
	}
	s.cur, s.curQ = nil, nil
	return nil
}

// Close finishes the last chunk and returns the manifest.
func (s *Splitter) Close() (Manifest, error) {
	if err := s.flush(); err != nil {
		return Manifest{}, err
	}
	for name := range s.unknown {
		s.man.UnknownFields = append(s.man.UnknownFields, name)
	}
	sort.Strings(s.man.UnknownFields)
	return s.man, nil
}

// idSet holds the event ids of one chunk. Keyed by the id's first 64 bits
// with the other 64 as the value, it takes Go's fast 64-bit map path; ids
// that share a first half (possible, never with random UUIDs in practice)
// go to an exact fallback set, so two ids are never conflated.
type idSet struct {
	byHi     map[uint64]uint64
	collided map[[16]byte]struct{}
}

func newIDSet(n int) idSet {
	return idSet{byHi: make(map[uint64]uint64, n), collided: map[[16]byte]struct{}{}}
}

// add reports whether id was new.
func (s idSet) add(id [16]byte) bool {
	hi, lo := binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(id[8:])
	have, ok := s.byHi[hi]
	switch {
	case !ok:
		s.byHi[hi] = lo
		return true
	case have == lo:
		return false
	}
	if _, dup := s.collided[id]; dup {
		return false
	}
	s.collided[id] = struct{}{}
	return true
}
