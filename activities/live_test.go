package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ktpipe/ktpipe/warehouse"
)

// TestLiveWriterBoundsEachRequest: rows cut across the splitter's writes
// arrive whole, each request holds at most MaxLiveRows rows and
// MaxLiveBytes bytes, a row too large for any request is left to the
// commit, and a file ending inside a row is an error.
func TestLiveWriterBoundsEachRequest(t *testing.T) {
	var requests [][]json.RawMessage
	var streamed int64
	sink := &liveSink{ctx: context.Background(), streamed: &streamed,
		insert: func(_ context.Context, rows []json.RawMessage) error {
			size := 0
			for _, r := range rows {
				size += len(r)
			}
			if len(rows) > warehouse.MaxLiveRows || size > warehouse.MaxLiveBytes {
				t.Errorf("a request of %d rows and %d bytes", len(rows), size)
			}
			requests = append(requests, append([]json.RawMessage(nil), rows...))
			return nil
		}}
	w, err := sink.Create("loads/l/chunk-00000.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for i := range 1200 {
		fmt.Fprintf(&all, `{"n":%d}`+"\n", i)
	}
	big := `{"pad":"` + strings.Repeat("x", warehouse.MaxLiveBytes/3) + `"}` + "\n"
	all.WriteString(big + big + big)
	all.WriteString(`{"pad":"` + strings.Repeat("y", warehouse.MaxLiveBytes) + `"}` + "\n")
	all.WriteString(`{"n":"last"}` + "\n")
	text := all.String()
	for len(text) > 0 { // writes that cut rows anywhere
		n := min(len(text), 777)
		if _, err := w.Write([]byte(text[:n])); err != nil {
			t.Fatal(err)
		}
		text = text[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range requests {
		for _, row := range r {
			rows = append(rows, string(row))
		}
	}
	if len(rows) != 1204 || rows[0] != `{"n":0}` || rows[1199] != `{"n":1199}` || rows[1203] != `{"n":"last"}` || streamed != 1204 {
		t.Fatalf("%d rows streamed (%d counted), want 1,200 small, 3 large and the last, the oversized one left out", len(rows), streamed)
	}
	if q, _ := sink.Create("loads/l/quarantine-00000.ndjson"); q == nil {
		t.Fatal("no writer for the quarantine file")
	} else if q.Write([]byte("{}\n")); len(requests) != 4 {
		t.Errorf("%d requests after a quarantine write, want 4: quarantined records are not live", len(requests))
	}
	w, _ = sink.Create("loads/l/chunk-00001.ndjson")
	w.Write([]byte(`{"n":1}` + "\n" + `{"cut`))
	if err := w.Close(); err == nil {
		t.Error("a file ending inside a row closed without an error")
	}
}
