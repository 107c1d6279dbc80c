package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

const (
	gwKnown = "11111111-2222-4333-8444-555555555555"
	gwLate  = "99999999-2222-4333-8444-555555555555" // missing from a stale list
)

func qid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

func jsonEvent(id, gw, decision string) string {
	return fmt.Sprintf(`{"id":"%s","timestamp":"2026-11-01T10:00:00Z","gateway_id":"%s","user":"ada","provider":"openai","model":"gpt-4o","decision":"%s","policies_evaluated":["pii"],"policies_triggered":[],"latency_ms":10,"input_tokens":100,"output_tokens":50,"cost":"0.01","metadata":{"app":"chat"}}`, id, gw, decision)
}

func csvEvent(id, gw, decision string) string {
	return fmt.Sprintf(`%s,2026-11-01T10:00:00Z,%s,ada,openai,gpt-4o,%s,"[""pii""]",[],10,100,50,0.01,"{""app"":""chat""}"`, id, gw, decision)
}

// quarantineOf splits a source with only gwKnown known, as a load with a
// stale gateway list does, and returns what it quarantined.
func quarantineOf(t *testing.T, format schemas.Format, text string) []warehouse.QuarantinedRecord {
	t.Helper()
	ctx := context.Background()
	store := staging.Dir{Root: t.TempDir()}
	sp, err := staging.NewSplitter(staging.SplitOptions{LoadID: "stale", Source: "export", ChunkRows: 100,
		Gateways: schemas.GatewaySet{gwKnown: true}, IngestedAt: time.Now()}, staging.StoreSink(ctx, store))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := schemas.NewDecoder(strings.NewReader(text), format, false)
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
	var out []warehouse.QuarantinedRecord
	for _, c := range man.Chunks {
		if c.QuarantineKey == "" {
			continue
		}
		f, err := store.Open(ctx, c.QuarantineKey)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r struct {
				RecordHash string `json:"record_hash"`
				Field      string `json:"field"`
				Rule       string `json:"rule"`
				Raw        string `json:"raw"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, warehouse.QuarantinedRecord(r))
		}
		f.Close()
	}
	return out
}

// TestQuarantineReplayPromotesWhatPassesNow: records quarantined from CSV
// and JSON sources for an unknown gateway pass once the gateway is known,
// and are decoded as what they were (a CSV row as CSV); records that
// still break a rule stay; truncated text and CSV-looking JSON records
// whose type rule could pass as CSV are never promoted.
func TestQuarantineReplayPromotesWhatPassesNow(t *testing.T) {
	header := strings.Join(schemas.FieldNames, ",")
	var recs []warehouse.QuarantinedRecord
	recs = append(recs, quarantineOf(t, schemas.FormatCSV, header+"\n"+strings.Join([]string{
		csvEvent(qid(1), gwKnown, "allow"),             // loaded at once
		csvEvent(qid(2), gwLate, "allow"),              // unknown gateway: promoted later
		csvEvent(qid(3), gwLate, "maybe"),              // bad decision too: stays
		csvEvent(qid(4), gwLate, "allow") + ",surplus", // wrong cell count: stays
	}, "\n"))...)
	allStrings := strings.NewReplacer(`"latency_ms":10`, `"latency_ms":"10"`, `"input_tokens":100`, `"input_tokens":"100"`,
		`"output_tokens":50`, `"output_tokens":"50"`, `["pii"]`, `"[\"pii\"]"`, `[]`, `"[]"`, `{"app":"chat"}`, `"{\"app\":\"chat\"}"`)
	recs = append(recs, quarantineOf(t, schemas.FormatNDJSON, strings.Join([]string{
		jsonEvent(qid(5), gwLate, "allow"),                      // promoted later
		allStrings.Replace(jsonEvent(qid(6), gwKnown, "allow")), // a type error as JSON, valid as CSV: stays
	}, "\n"))...)
	if len(recs) != 5 {
		t.Fatalf("quarantined %d records, want 5: %+v", len(recs), recs)
	}
	recs = append(recs, warehouse.QuarantinedRecord{RecordHash: "t", Field: "(record)", Rule: "too large",
		Raw: jsonEvent(qid(7), gwLate, "allow")[:80] + "…[truncated]"})

	ctx := context.Background()
	store := staging.Dir{Root: t.TempDir()}
	a := &Activities{Store: store, ChunkRows: 100}
	jw, err := store.Create(ctx, QuarantineInputKey("qr", "records.json"))
	if err != nil {
		t.Fatal(err)
	}
	x := &quarantineExport{ctx: ctx, a: a, loadID: "qr", jw: jw, json: bufio.NewWriter(jw), csv: map[string]*csvFile{}}
	x.json.WriteString("[")
	counts := map[addResult]int{}
	for _, r := range recs {
		counts[x.add(r)]++
	}
	x.json.WriteString("]\n")
	files, err := x.close(QuarantineInputKey("qr", "records.json"))
	if err != nil || x.err != nil {
		t.Fatal(err, x.err)
	}
	if counts[added] != 3 || counts[unreadable] != 1 || counts[skipped] != 2 {
		t.Fatalf("added %d, unreadable %d, skipped %d; want 3, 1, 2", counts[added], counts[unreadable], counts[skipped])
	}
	if len(files) != 2 || files[0].Format != "json" || files[1].Format != "csv" {
		t.Fatalf("files %+v, want one JSON and one CSV", files)
	}

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.SplitQuarantine, payload.SplitQuarantineInput{LoadID: "qr", Files: files, Gateways: []string{gwKnown, gwLate}})
	if err != nil {
		t.Fatal(err)
	}
	var man payload.Manifest
	v.Get(&man)
	if man.Rows != 2 || man.Quarantined != 1 || len(man.Chunks) != 1 {
		t.Fatalf("manifest %+v, want 2 rows (events 2 and 5) and 1 quarantined (event 3)", man)
	}
	f, err := store.Open(ctx, man.Chunks[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct {
			EventID string `json:"event_id"`
			Source  string `json:"source"`
		}
		json.Unmarshal(sc.Bytes(), &row)
		if row.Source != payload.SourceQuarantineReplay {
			t.Errorf("row source %q", row.Source)
		}
		ids = append(ids, row.EventID)
	}
	if strings.Join(ids, " ") != qid(5)+" "+qid(2) {
		t.Fatalf("promoted %v, want events 5 (JSON file first) and 2 (CSV)", ids)
	}
}
