package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
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

// TestLandLiveResumesAfterItsLastGroup: a retried landing starts at the
// group of files its last attempt heartbeat, counts the rows streamed
// before it, skips a file already gone, and streams only valid events.
func TestLandLiveResumesAfterItsLastGroup(t *testing.T) {
	store := staging.Dir{Root: t.TempDir()}
	var keys []string
	for i := range liveGroup + 3 {
		key := fmt.Sprintf("webhooks/%03d.json", i)
		w, err := store.Create(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "[%s,%s]", jsonEvent(qid(2*i), gwKnown, "allow"), jsonEvent(qid(2*i+1), gwLate, "allow"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	keys = append(keys, "webhooks/gone.json")
	var streamed []string
	a := &Activities{Store: store, ChunkRows: 1000, InsertLive: func(_ context.Context, rows []json.RawMessage) error {
		for _, r := range rows {
			var row struct {
				ID string `json:"event_id"`
			}
			if err := json.Unmarshal(r, &row); err != nil {
				return err
			}
			streamed = append(streamed, row.ID)
		}
		return nil
	}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	env.SetHeartbeatDetails(LiveProgress{Next: liveGroup, Rows: 40})
	v, err := env.ExecuteActivity(a.LandLive, payload.LandLiveInput{LoadID: "L-live-0", Keys: keys, Gateways: []string{gwKnown}})
	if err != nil {
		t.Fatal(err)
	}
	var res payload.LandLiveResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	want := []string{qid(2 * liveGroup), qid(2*liveGroup + 2), qid(2*liveGroup + 4)}
	if fmt.Sprint(streamed) != fmt.Sprint(want) || res.Rows != 43 {
		t.Errorf("streamed %v, %d rows in all; want %v and 43: the last group's valid events after the 40 streamed before", streamed, res.Rows, want)
	}
	if res.Gone != 1 {
		t.Errorf("%d files counted gone, want the one removed before the landing", res.Gone)
	}
}
