package warehouse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/schemas"
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
		if err := w.InsertLiveAsStamped(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	got := queryRows(t, fmt.Sprintf("SELECT event_id, committed, cost_usd FROM `%s.%s.%s` ORDER BY event_id", project, ds, warehouse.LiveView))
	want := fmt.Sprint([][]any{{uuid(70), true, "1/100"}, {uuid(71), false, "1/50"}})
	if fmt.Sprint(got) != want {
		t.Errorf("live view %v, want %s: the fact's row, and the fresh event once", got, want)
	}
}

// A live row is stamped as it is streamed, not when it was split: a
// pull's landing streams rows its pull split hours before, and the
// audit's read of the rows ingested since its last whole read counts on
// a row showing within LiveLate of its stamp.
func TestInsertLiveStampsTheRowsAsItStreamsThem(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	split := time.Now().Add(-3 * time.Hour)
	dir, man := splitAt(t, "load-old-split", 10, split, event(uuid(130), time.Now().Add(-3*time.Hour).UTC().Format(time.RFC3339), "ada", "gpt-4o", "allow", "0.01"))
	var rows []json.RawMessage
	for _, c := range man.Chunks {
		b, err := os.ReadFile(filepath.Join(dir.Root, filepath.FromSlash(c.Key)))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			rows = append(rows, json.RawMessage(l))
		}
	}
	before := time.Now().UTC().Truncate(time.Microsecond)
	if err := w.InsertLive(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	got := queryRows(t, fmt.Sprintf("SELECT ingested_at FROM `%s.%s.%s`", project, ds, schemas.TableLive))
	if len(got) != 1 {
		t.Fatalf("live rows %v, want 1", got)
	}
	if at, ok := got[0][0].(time.Time); !ok || at.Before(before) {
		t.Errorf("ingested at %v, want the stream's time (%s or after), not the split's %s", got[0][0], before, split.UTC())
	}
}
