package staging

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
// request: a normal chunk (50,000 rows of ~0.85 KB staged, measured on
// the simulator's events with a pull's load id) is ~42 MB, so only
// chunks of unusually large records reach it.
const DefaultChunkBytes = 128 << 20

// GrownChunkBytes bounds a chunk file of a chunk grown to rows past
// KTPIPE_CHUNK_ROWS, so that its load is one commit
// (warehouse.ChunkRowsFor): 4 KiB a row, between DefaultChunkBytes and
// MaxGrownChunkBytes. DefaultChunkBytes alone would close such a chunk by
// its bytes first (at ~160,000 of the simulator's rows) and split the
// load again. 4 KiB is about 1.7 times the staged row of a 2 KB event,
// the large end of real ones (a staged row is the event's JSON and
// ~0.35 KB of load columns; the simulator's are 0.85 KB).
func GrownChunkBytes(rows int) int64 {
	return min(max(DefaultChunkBytes, int64(rows)*4096), MaxGrownChunkBytes)
}

// MaxGrownChunkBytes caps a grown chunk's file: it is uploaded to
// BigQuery in one request (warehouse.loadNDJSON; the emulator refuses
// resumable uploads), and a broken upload is retried whole. A day's
// export of 100M events of 2 KB is 480 files of ~500 MB.
const MaxGrownChunkBytes = 1 << 30

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
	rawBuf   []byte // a truncated raw text
	ev       schemas.Event
	keys     schemas.KeyMemo
	valid    *schemas.Validator
	meta     schemas.LoadMeta
	enc      *schemas.EventRowEncoder // rows of this load
	min, max time.Time                // event_date range of the current chunk
}

type chunkFile struct {
	w io.WriteCloser
	// buf holds rows not yet written to w: they are encoded straight into
	// it (a bufio.Writer would copy each row once more), and it is written
	// out once it holds chunkBuffer bytes, so it holds at most that and
	// one row.
	buf   []byte
	n     int64 // lines
	bytes int64
}

const chunkBuffer = 256 << 10

func newChunkFile(w io.WriteCloser) *chunkFile {
	return &chunkFile{w: w, buf: make([]byte, 0, chunkBuffer+16<<10)}
}

// added counts the row appended to buf from start on, and writes buf out
// once it is full.
func (f *chunkFile) added(start int) error {
	f.n++
	f.bytes += int64(len(f.buf) - start)
	if len(f.buf) >= chunkBuffer {
		return f.writeOut()
	}
	return nil
}

func (f *chunkFile) writeOut() error {
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.w.Write(f.buf)
	f.buf = f.buf[:0]
	return err
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
		valid:   schemas.NewValidator(opts.Gateways),
	}, nil
}

// Add consumes every record of dec. A broken stream stops with an error;
// bad records go to the quarantine file with their reason.
func (s *Splitter) Add(dec *schemas.Decoder) error {
	ev := &s.ev
	for {
		err := dec.Next(ev)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			err = s.valid.Validate(ev)
		}
		var fe *schemas.FieldError
		if err != nil {
			// Only here: errors.As's target escapes, so declaring it for
			// every record allocated it for every record.
			if fe = fieldError(err); fe == nil {
				return &MalformedError{Record: s.man.Records + 1, Err: err}
			}
		}
		s.man.Records++
		if fe != nil {
			if err := s.quarantine(dec, ev, fe); err != nil {
				return err
			}
		} else if err := s.write(ev); err != nil {
			return err
		}
		if s.opts.Progress != nil && s.opts.ProgressEvery > 0 && s.man.Records%s.opts.ProgressEvery == 0 {
			s.opts.Progress(s.man.Records)
		}
	}
}

// fieldError returns err's *FieldError, or nil.
func fieldError(err error) *schemas.FieldError {
	var fe *schemas.FieldError
	errors.As(err, &fe)
	return fe
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
	s.cur = newChunkFile(w)
	s.ids.reset(s.opts.ChunkRows)
	s.hashes = map[[32]byte]struct{}{}
	s.min, s.max = time.Time{}, time.Time{}
	s.man.Chunks = append(s.man.Chunks, Chunk{Index: i, Key: ChunkKey(s.opts.LoadID, i)})
	return nil
}

func (s *Splitter) write(ev *schemas.Event) error {
	if err := s.open(); err != nil {
		return err
	}
	id, _ := ev.UUID() // validated above
	if !s.ids.add(id) {
		s.man.Resent++
		return nil
	}
	for _, f := range ev.Extra {
		s.unknown[f.Name] = true
	}
	d := s.keys.Transform(ev)
	if s.min.IsZero() || d.EventDate.Before(s.min) {
		s.min = d.EventDate
	}
	if d.EventDate.After(s.max) {
		s.max = d.EventDate
	}
	start := len(s.cur.buf)
	s.cur.buf = s.enc.Append(s.cur.buf, ev, d)
	if err := s.cur.added(start); err != nil {
		return fmt.Errorf("write chunk: %w", err)
	}
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

func (s *Splitter) quarantine(dec *schemas.Decoder, ev *schemas.Event, fe *schemas.FieldError) error {
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
		id = dec.RecordID()
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
		s.curQ = newChunkFile(w)
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
	if ev.HasTimestamp() {
		q.EventTimestamp = ev.Timestamp
	}
	start := len(s.curQ.buf)
	s.curQ.buf = schemas.AppendQuarantineRow(s.curQ.buf, q, s.meta)
	if err := s.curQ.added(start); err != nil {
		return fmt.Errorf("write quarantine: %w", err)
	}
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
		if f == nil || f.w == nil {
			continue
		}
		if err := f.writeOut(); err != nil {
			return fmt.Errorf("flush chunk %d: %w", c.Index, err)
		}
		w := f.w
		f.w = nil // closed, published or not: Abort leaves it
		if err := w.Close(); err != nil {
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

// Abort drops the chunk files still open after an error: nothing more is
// published, and their temporary files are removed. It does nothing
// after a successful Close, so a caller may defer it.
func (s *Splitter) Abort() {
	for _, f := range []*chunkFile{s.cur, s.curQ} {
		if f != nil && f.w != nil {
			Discard(f.w)
			f.w = nil
		}
	}
	s.cur, s.curQ = nil, nil
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

// idSet holds the event ids of one chunk: an open-addressing table,
// linear probing, at most half full, of 32-bit tags (a hash of each id;
// 0 marks an empty slot) beside the ids' 16 bytes, which are read only
// when a tag matches. It replaced a Go map keyed by the id's first half,
// whose lookups were a tenth of a split: a new id, nearly every one, costs
// two multiplies and a look at the tags, which take a quarter of the
// table's memory and so miss the cache less.
type idSet struct {
	tags  []uint32
	ids   [][2]uint64
	shift uint   // 64 - log2(len(tags))
	a, b  uint64 // the hash's random odd multipliers
	n     int    // ids held
}

// reset empties s for about n ids; it keeps the table when it is the
// size n needs (each chunk of a split has the same bound).
func (s *idSet) reset(n int) {
	size, shift := 16, uint(60)
	for size < 2*n {
		size, shift = 2*size, shift-1
	}
	if len(s.tags) == size {
		clear(s.tags) // ids are read only where a tag is set
	} else {
		s.tags, s.ids = make([]uint32, size), make([][2]uint64, size)
	}
	// Multiply-add-shift hashing with multipliers drawn per set: ids need
	// not be random (a producer may count them), and a file cannot be
	// made to collide in a table it cannot predict.
	s.shift, s.a, s.b = shift, rand.Uint64()|1, rand.Uint64()|1
	s.n = 0
}

// add reports whether id was new.
func (s *idSet) add(id [16]byte) bool {
	if 2*(s.n+1) > len(s.tags) {
		s.grow()
	}
	if s.insert([2]uint64{binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(id[8:])}) {
		s.n++
		return true
	}
	return false
}

// insert puts k in its slot unless it is there; it reports whether it
// was new.
func (s *idSet) insert(k [2]uint64) bool {
	h := k[0]*s.a + k[1]*s.b
	// The slot from the hash's top bits, the tag from the 32 below them.
	tag := uint32(h>>(s.shift-32)) | 1
	mask := uint64(len(s.tags) - 1)
	for i := h >> s.shift; ; i = (i + 1) & mask {
		switch t := s.tags[i]; {
		case t == 0:
			s.tags[i], s.ids[i] = tag, k
			return true
		case t == tag && s.ids[i] == k:
			return false
		}
	}
}

// grow doubles the table (a chunk's ids are bounded by its rows, so this
// happens only when the size given was a poor guess).
func (s *idSet) grow() {
	tags, ids := s.tags, s.ids
	s.tags, s.ids, s.shift = make([]uint32, 2*len(tags)), make([][2]uint64, 2*len(tags)), s.shift-1
	for i, t := range tags {
		if t != 0 {
			s.insert(ids[i])
		}
	}
}
