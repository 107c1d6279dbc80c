package staging_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
)

// memSink keeps the files a split writes.
type memSink map[string]*bytes.Buffer

func (m memSink) Create(key string) (io.WriteCloser, error) {
	m[key] = &bytes.Buffer{}
	return nopCloser{m[key]}, nil
}

// refChunk is one chunk of a split as the plain way makes it.
type refChunk struct {
	rows        []byte
	quarantined int64
}

// referenceSplit is what a split of data into chunks of chunkRows must
// make, computed the plain way, one record at a time: Validate with the
// gateway set, a Go map of parsed ids per chunk, Transform and
// AppendEventRow for each new valid event; a chunk closes when its rows
// or its quarantined records reach chunkRows.
func referenceSplit(t testing.TB, data []byte, gateways schemas.GatewaySet, meta schemas.LoadMeta, chunkRows int64) (chunks []refChunk, resent int64) {
	t.Helper()
	dec, err := schemas.NewDecoder(bytes.NewReader(data), schemas.FormatNDJSON, false)
	if err != nil {
		t.Fatal(err)
	}
	var cur *refChunk
	var rows int64
	var seen map[[16]byte]bool
	var bad map[string]bool
	var ev schemas.Event
	for {
		err := dec.Next(&ev)
		if errors.Is(err, io.EOF) {
			return chunks, resent
		}
		if cur == nil {
			chunks = append(chunks, refChunk{})
			cur, rows, seen, bad = &chunks[len(chunks)-1], 0, map[[16]byte]bool{}, map[string]bool{}
		}
		var fe *schemas.FieldError
		if err != nil && !errors.As(err, &fe) {
			return chunks, resent // a broken stream: the split stops too
		}
		if err == nil {
			err = schemas.Validate(&ev, gateways)
		}
		if err != nil {
			key := string(dec.Raw())
			if id := schemas.RecordID(dec.Raw()); id != "" {
				key = "id:" + id
			}
			if bad[key] {
				resent++
				continue
			}
			bad[key] = true
			if cur.quarantined++; cur.quarantined == chunkRows {
				cur = nil
			}
			continue
		}
		id, _ := schemas.ParseUUID(ev.ID)
		if seen[id] {
			resent++
			continue
		}
		seen[id] = true
		cur.rows = schemas.AppendEventRow(cur.rows, &ev, schemas.Transform(&ev), meta)
		if rows++; rows == chunkRows {
			cur = nil
		}
	}
}

// splitCorpus is a generated export of events, resent, with ids that
// differ only in case or only in their second half, the all-zero id,
// gateways outside the set and a bad record resent in other bytes, in a
// shuffled order.
func splitCorpus(t testing.TB, events int) string {
	var gen bytes.Buffer
	if err := ktsim.WriteFile(&gen, ktsim.FileOptions{Events: events, Format: "ndjson", Seed: 9, InvalidRate: 0.1}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(gen.String()), "\n")
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < events/10; i++ {
		lines = append(lines, lines[r.IntN(len(lines))])
	}
	lines = append(lines,
		strings.Replace(ev1, "0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f", "0B6C7E9E-3F1A-4C2B-9D7E-1A2B3C4D5E6F", 1),
		strings.Replace(ev1, "1a2b3c4d5e6f", "1a2b3c4d5e70", 1), ev1, ev2,
		strings.Replace(ev1, "0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f", "00000000-0000-0000-0000-000000000000", 1),
		strings.Replace(ev2, "0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f", "00000000-0000-0000-0000-000000000000", 1),
		strings.Replace(ev2, "11111111-2222-4333-8444-555555555555", "11111111-2222-4333-8444-555555555556", 1),
		bad, strings.Replace(bad, `":"`, `": "`, 1))
	r.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return strings.Join(lines, "\n")
}

// FuzzSplitDifferential: a split writes exactly the chunks the plain way
// makes, row for row, in one chunk and in chunks of 7 rows, with the same
// quarantined and resent counts. It holds the split's shortcuts (the id
// parsed once, the gateway memo, the open-addressing id set, the
// transform's caches, rows encoded straight into the chunk's buffer) to
// the functions they replaced. Its seeds are small, so the fuzzer runs
// fast; TestSplitMatchesReference is the same check on a file that fills
// the chunk's write buffer twice.
func FuzzSplitDifferential(f *testing.F) {
	f.Add(splitCorpus(f, 40))
	f.Add(strings.Join([]string{ev1, ev1, bad, ev2, bad}, "\n"))
	f.Add(strings.Join([]string{bad, ev1, ev2}, "\n"))
	f.Fuzz(checkSplit)
}

func TestSplitMatchesReference(t *testing.T) {
	checkSplit(t, splitCorpus(t, 1000))
}

func checkSplit(t *testing.T, data string) {
	gateways := schemas.GatewaySet{"11111111-2222-4333-8444-555555555555": true}
	for i, id := range ktsim.GatewayIDs(9) { // the corpus's, one in five unknown
		gateways[id] = i%5 != 0
	}
	meta := schemas.LoadMeta{LoadID: "diff", Source: "export", IngestedAt: time.Unix(1700000000, 123456789)}
	for _, chunkRows := range []int64{1 << 12, 7} { // one chunk (a set sized for a million rows would be 40 MB a run), and many
		want, wantResent := referenceSplit(t, []byte(data), gateways, meta, chunkRows)
		dec, err := schemas.NewDecoder(strings.NewReader(data), schemas.FormatNDJSON, false)
		if err != nil {
			t.Fatal(err)
		}
		sink := memSink{}
		sp, err := staging.NewSplitter(staging.SplitOptions{LoadID: meta.LoadID, Source: meta.Source, IngestedAt: meta.IngestedAt,
			ChunkRows: int(chunkRows), Gateways: gateways}, sink)
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Add(dec); err != nil {
			var me *staging.MalformedError
			if errors.As(err, &me) {
				return // the stream itself is broken; the decoders' own tests compare those
			}
			t.Fatal(err)
		}
		man, err := sp.Close()
		if err != nil {
			t.Fatal(err)
		}
		if chunkRows > 1000 && len(data) > 400_000 && man.Rows < 500 {
			t.Fatalf("%d rows of a generated file: the gateway set does not fit it", man.Rows)
		}
		if len(man.Chunks) != len(want) || man.Resent != wantResent {
			t.Fatalf("chunk rows %d: %d chunks, %d resent; want %d and %d", chunkRows, len(man.Chunks), man.Resent, len(want), wantResent)
		}
		for i, c := range man.Chunks {
			var got []byte
			if b := sink[c.Key]; b != nil {
				got = b.Bytes()
			}
			if !bytes.Equal(got, want[i].rows) {
				t.Fatalf("chunk rows %d, chunk %d: rows differ from the plain way's:\n%s", chunkRows, i, firstDiff(got, want[i].rows))
			}
			if c.Quarantined != want[i].quarantined {
				t.Fatalf("chunk rows %d, chunk %d: %d quarantined, want %d", chunkRows, i, c.Quarantined, want[i].quarantined)
			}
		}
	}
}

func firstDiff(a, b []byte) string {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(al) && i < len(bl); i++ {
		if !bytes.Equal(al[i], bl[i]) {
			return fmt.Sprintf("row %d:\n%s\n%s", i, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d rows, want %d", len(al), len(bl))
}

// Each chunk has its own id set: an id in two chunks lands in both (the
// warehouse's dedup removes the second), so clearing the set for a new
// chunk must forget the first chunk's ids, and only those.
func TestIDSetStartsOverEachChunk(t *testing.T) {
	id := func(i int) string {
		return strings.Replace(ev1, "0b6c7e9e", fmt.Sprintf("%08x", i), 1)
	}
	// Chunks of 2 rows: [1 2] [1 3] [3 4]; the resend of 1 inside the
	// second chunk is dropped.
	data := strings.Join([]string{id(1), id(2), id(1), id(1), id(3), id(3), id(4)}, "\n")
	dec, _ := schemas.NewDecoder(strings.NewReader(data), schemas.FormatNDJSON, false)
	sink := memSink{}
	sp, _ := staging.NewSplitter(staging.SplitOptions{LoadID: "l", Source: "pull", ChunkRows: 2}, sink)
	if err := sp.Add(dec); err != nil {
		t.Fatal(err)
	}
	man, _ := sp.Close()
	var got []int64
	for _, c := range man.Chunks {
		got = append(got, c.Rows)
	}
	if fmt.Sprint(got) != "[2 2 2]" || man.Resent != 1 {
		t.Fatalf("rows per chunk %v, resent %d; want [2 2 2] and 1", got, man.Resent)
	}
}
