package staging_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
)

const ev1 = `{"id":"0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f","timestamp":"2026-11-01T23:59:59Z","gateway_id":"11111111-2222-4333-8444-555555555555","user":"u","provider":"openai","model":"gpt-4o","decision":"allow","latency_ms":1,"input_tokens":2,"output_tokens":3,"cost":"0.1"}`
const ev2 = `{"id":"1b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f","timestamp":"2026-11-02T00:00:00Z","gateway_id":"11111111-2222-4333-8444-555555555555","user":"u","provider":"openai","model":"gpt-4o","decision":"block","latency_ms":1,"input_tokens":2,"output_tokens":0,"cost":"0.2"}`
const bad = `{"id":"2b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f","decision":"maybe"}`

func lines(t *testing.T, d staging.Dir, key string) []map[string]any {
	t.Helper()
	f, err := d.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line is not JSON: %v", key, err)
		}
		out = append(out, m)
	}
	return out
}

func TestSplitChunksDedupsAndQuarantines(t *testing.T) {
	d := staging.Dir{Root: t.TempDir()}
	// ev1 resent, bad resent: each must land once.
	data := strings.Join([]string{ev1, ev1, bad, ev2, bad}, "\n")
	dec, err := schemas.NewDecoder(strings.NewReader(data), schemas.FormatNDJSON, false)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := staging.NewSplitter(staging.SplitOptions{
		LoadID: "load-1", Source: "export", ChunkRows: 10, IngestedAt: time.Unix(1700000000, 0),
		Gateways: schemas.GatewaySet{"11111111-2222-4333-8444-555555555555": true},
	}, staging.StoreSink(context.Background(), d))
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
	if man.Records != 5 || man.Rows != 2 || man.Quarantined != 1 || man.Resent != 2 || len(man.Chunks) != 1 {
		t.Fatalf("manifest %+v", man)
	}
	c := man.Chunks[0]
	if c.MinDate != "2026-11-01" || c.MaxDate != "2026-11-02" {
		t.Errorf("date range %s..%s", c.MinDate, c.MaxDate)
	}
	rows := lines(t, d, c.Key)
	if len(rows) != 2 || rows[1]["was_blocked"] != true || rows[0]["cost_usd"] != "0.1" {
		t.Errorf("rows %v", rows)
	}
	q := lines(t, d, c.QuarantineKey)
	if len(q) != 1 || q[0]["field"] != "timestamp" || q[0]["raw"] != bad {
		t.Errorf("quarantine %v", q)
	}
}

func TestSplitRespectsChunkRows(t *testing.T) {
	d := staging.Dir{Root: t.TempDir()}
	var buf bytes.Buffer
	for i := 0; i < 25; i++ {
		buf.WriteString(strings.Replace(ev1, "0b6c7e9e", "0b6c7e"+string(rune('a'+i/16))+string("0123456789abcdef"[i%16]), 1) + "\n")
	}
	dec, _ := schemas.NewDecoder(&buf, schemas.FormatNDJSON, false)
	sp, _ := staging.NewSplitter(staging.SplitOptions{LoadID: "l2", Source: "pull", ChunkRows: 10}, staging.StoreSink(context.Background(), d))
	if err := sp.Add(dec); err != nil {
		t.Fatal(err)
	}
	man, _ := sp.Close()
	if len(man.Chunks) != 3 || man.Chunks[2].Rows != 5 || man.Rows != 25 {
		t.Fatalf("chunks %+v", man.Chunks)
	}
	keys, _ := d.List(context.Background(), "loads/l2")
	if len(keys) != 3 {
		t.Errorf("keys %v", keys)
	}
}

func TestKeysCannotEscape(t *testing.T) {
	for _, k := range []string{"../x", "a/../../b", "/abs", "a//b", "", "a b"} {
		if staging.CheckKey(k) == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	if _, err := staging.NewSplitter(staging.SplitOptions{LoadID: "../evil", ChunkRows: 1}, staging.StoreSink(context.Background(), staging.Dir{Root: t.TempDir()})); err == nil {
		t.Error("load id with .. accepted")
	}
}
