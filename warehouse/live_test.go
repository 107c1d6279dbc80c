package warehouse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/warehouse"
)

// TestLiveViewAddsUncommittedRowsOnce: the live view is the fact table
// plus the streamed rows it does not hold yet, one row per event id; a
// streamed row of an event the fact holds, one dated before yesterday
// and one streamed before the view's hour add nothing.
func TestLiveViewAddsUncommittedRowsOnce(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_live_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	ctx := context.Background()
	now := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	old := time.Now().UTC().AddDate(0, 0, -3).Format(time.RFC3339)
	committed := event(uuid(70), now, "ada", "gpt-4o", "allow", "0.01")
	fresh := event(uuid(71), now, "bo", "gpt-4o", "block", "0.02", "pii")
	late := event(uuid(72), old, "ada", "gpt-4o", "allow", "0.01")
	stale := event(uuid(73), now, "ada", "gpt-4o", "allow", "0.01") // streamed before the view's hour
	load(t, w, "load-fact", 10, committed)

	dir, man := split(t, "load-live", 10, committed, fresh, late, stale)
	var rows []json.RawMessage
	for _, c := range man.Chunks {
		f, err := dir.Open(ctx, c.Key)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			row := json.RawMessage(append([]byte(nil), sc.Bytes()...))
			if strings.Contains(string(row), uuid(73)) {
				var fields map[string]any
				if err := json.Unmarshal(row, &fields); err != nil {
					t.Fatal(err)
				}
				fields["ingested_at"] = time.Now().Add(-warehouse.DefaultLiveWindow - time.Minute).UTC().Format(time.RFC3339Nano)
				if row, err = json.Marshal(fields); err != nil {
					t.Fatal(err)
				}
			}
			rows = append(rows, row)
		}
		f.Close()
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows split, want 4", len(rows))
	}
	// The fresh event is streamed twice: streaming is at least once.
	for range 2 {
		if err := w.InsertLive(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	got := queryRows(t, fmt.Sprintf("SELECT event_id, committed, cost_usd FROM `%s.%s.%s` ORDER BY event_id", project, ds, warehouse.LiveView))
	want := fmt.Sprint([][]any{{uuid(70), true, "1/100"}, {uuid(71), false, "1/50"}})
	if fmt.Sprint(got) != want {
		t.Errorf("live view %v, want %s: the fact's row, and the fresh event once", got, want)
	}
}
