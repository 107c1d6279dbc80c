package staging_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
)

func split(t *testing.T, d staging.Dir, opts staging.SplitOptions, data string) staging.Manifest {
	t.Helper()
	dec, err := schemas.NewDecoder(strings.NewReader(data), schemas.FormatNDJSON, false)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := staging.NewSplitter(opts, staging.StoreSink(context.Background(), d))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(dec); err != nil {
		t.Fatal(err)
	}
	man, err := sp.Close()
	if err != nil {
		t.Fatal(err)
	}
	return man
}

// badRecords returns n distinct invalid records (no id, so each is its
// own text) of about pad bytes each.
func badRecords(n, pad int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"n":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", pad))
	}
	return b.String()
}

// TestQuarantineClosesChunks: quarantined records count towards a
// chunk's size like rows do (500,000 invalid records made one 141 MB
// quarantine file).
func TestQuarantineClosesChunks(t *testing.T) {
	t.Run("rows", func(t *testing.T) {
		d := staging.Dir{Root: t.TempDir()}
		man := split(t, d, staging.SplitOptions{LoadID: "q1", Source: "export", ChunkRows: 10}, badRecords(25, 10))
		if man.Quarantined != 25 || len(man.Chunks) != 3 {
			t.Fatalf("quarantined %d in %d chunks, want 25 in 3", man.Quarantined, len(man.Chunks))
		}
		var total int64
		for _, c := range man.Chunks {
			if n := int64(len(lines(t, d, c.QuarantineKey))); n != c.Quarantined || n > 10 {
				t.Errorf("chunk %d: %d quarantine lines, manifest says %d, cap 10", c.Index, n, c.Quarantined)
			}
			total += c.Quarantined
		}
		if total != 25 {
			t.Errorf("chunks hold %d quarantined, want 25", total)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		d := staging.Dir{Root: t.TempDir()}
		const limit = 8 << 10
		man := split(t, d, staging.SplitOptions{LoadID: "q2", Source: "export", ChunkRows: 1000, ChunkBytes: limit}, badRecords(40, 1000))
		if man.Quarantined != 40 || len(man.Chunks) < 4 {
			t.Fatalf("quarantined %d in %d chunks, want 40 in several", man.Quarantined, len(man.Chunks))
		}
		for _, c := range man.Chunks {
			f, err := d.Open(context.Background(), c.QuarantineKey)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := f.Stat()
			f.Close()
			// A chunk closes at the first line that reaches the limit.
			if st.Size() > limit+2<<10 {
				t.Errorf("chunk %d: quarantine file of %d bytes, limit %d", c.Index, st.Size(), limit)
			}
		}
	})
}

// TestHugeRawTextIsTruncatedWithItsHash: a quarantine row keeps at most
// MaxRawBytes of raw text plus a marker with the whole text's size and
// sha256, and its record_hash is still the sha256 of the whole text, so
// the same record resent is quarantined once.
func TestHugeRawTextIsTruncatedWithItsHash(t *testing.T) {
	d := staging.Dir{Root: t.TempDir()}
	big := fmt.Sprintf(`{"pad":"%s","more":"ü"}`, strings.Repeat("é", 5000)) // no id: identity by text
	sum := sha256.Sum256([]byte(big))
	man := split(t, d, staging.SplitOptions{LoadID: "q3", Source: "export", ChunkRows: 10, MaxRawBytes: 1001}, big+"\n"+big+"\n")
	if man.Quarantined != 1 || man.Resent != 1 {
		t.Fatalf("quarantined %d resent %d, want 1 and 1", man.Quarantined, man.Resent)
	}
	q := lines(t, d, man.Chunks[0].QuarantineKey)
	raw, _ := q[0]["raw"].(string)
	marker := fmt.Sprintf("…[ktpipe: raw text truncated, %d bytes in all, sha256 %s]", len(big), hex.EncodeToString(sum[:]))
	if !strings.HasSuffix(raw, marker) || !strings.HasPrefix(big, strings.TrimSuffix(raw, marker)) || len(raw) > 1001+len(marker) {
		t.Errorf("raw %d bytes %.60q…%q, want a prefix of at most 1001 bytes and %q", len(raw), raw, raw[max(0, len(raw)-120):], marker)
	}
	if strings.Contains(raw, "\ufffd") {
		t.Error("the cut split a character")
	}
	if q[0]["record_hash"] != hex.EncodeToString(sum[:]) {
		t.Errorf("record_hash %v, want the sha256 of the whole text", q[0]["record_hash"])
	}
}

// TestTooLargeRecordIsQuarantinedByItsWholeHash: a record over the
// decoder's cap lands in quarantine with rule "record too large", its
// prefix and marker, and the hash of its whole text as identity; the
// records around it load.
func TestTooLargeRecordIsQuarantinedByItsWholeHash(t *testing.T) {
	d := staging.Dir{Root: t.TempDir()}
	big := `{"id":"x","pad":"` + strings.Repeat("y", 3<<20) + `"}`
	sum := sha256.Sum256([]byte(big + "\n")) // the NDJSON record with its line end
	man := split(t, d, staging.SplitOptions{LoadID: "q4", Source: "export", ChunkRows: 10, IngestedAt: time.Unix(1700000000, 0),
		Gateways: schemas.GatewaySet{"11111111-2222-4333-8444-555555555555": true}},
		ev1+"\n"+big+"\n"+ev2+"\n"+big+"\n")
	if man.Rows != 2 || man.Quarantined != 1 || man.Resent != 1 {
		t.Fatalf("manifest %+v", man)
	}
	q := lines(t, d, man.Chunks[0].QuarantineKey)
	raw, _ := q[0]["raw"].(string)
	if q[0]["event_timestamp"] != nil {
		t.Errorf("event_timestamp %v: the record before's", q[0]["event_timestamp"])
	}
	if q[0]["rule"] != schemas.RuleTooLarge || q[0]["record_hash"] != hex.EncodeToString(sum[:]) ||
		len(raw) > schemas.TruncatedRawBytes+200 || !strings.HasPrefix(raw, `{"id":"x","pad":"yyy`) ||
		!strings.HasSuffix(raw, fmt.Sprintf("%d bytes in all, sha256 %s]", len(big)+1, hex.EncodeToString(sum[:]))) {
		t.Errorf("quarantine row rule %v hash %v raw %d bytes ending %q", q[0]["rule"], q[0]["record_hash"], len(raw), raw[max(0, len(raw)-100):])
	}
}
