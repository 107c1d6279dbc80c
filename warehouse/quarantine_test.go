package warehouse_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/warehouse"
)

// unknownGateway moves an event of gw to a gateway no load knows, so
// that validation quarantines it.
func unknownGateway(event string) string {
	return strings.Replace(event, gw, "99999999-2222-4333-8444-555555555555", 1)
}

// readQuarantine returns the event ids (from the raw text) ReadQuarantine
// selects, in its order.
func readQuarantine(t *testing.T, w *warehouse.Warehouse, f warehouse.QuarantineFilter) (ids []string, last string) {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 100
	}
	err := w.ReadQuarantine(context.Background(), f, func(r warehouse.QuarantinedRecord) error {
		if r.RecordHash <= last {
			t.Errorf("record hash %s after %s: not in order", r.RecordHash, last)
		}
		last = r.RecordHash
		for n := 1; n <= 9; n++ {
			if strings.Contains(r.Raw, uuid(n)) {
				ids = append(ids, uuid(n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, last
}

func sameSet(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	m := map[string]bool{}
	for _, g := range got {
		m[g] = true
	}
	for _, w := range want {
		if !m[w] {
			return false
		}
	}
	return true
}

// TestReadQuarantineSelectsWhatAReplayMayPromote: records with an event id
// the fact table lacks, by rule, by window, in batches; a record whose id
// reached the fact table is resolved: not selected, not counted by
// reconcile.
func TestReadQuarantineSelectsWhatAReplayMayPromote(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	ctx := context.Background()
	noID := unknownGateway(strings.Replace(event("x", "2026-11-01T12:00:00Z", "ada", "gpt-4o", "allow", "0.01"), `"id":"x",`, "", 1))
	load(t, w, "load-q", 10,
		event(uuid(1), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		unknownGateway(event(uuid(2), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01")),
		unknownGateway(event(uuid(3), "2026-11-03T10:00:00Z", "bo", "gpt-4o", "allow", "0.02")),
		event(uuid(4), "2026-11-03T11:00:00Z", "bo", "gpt-4o", "maybe", "0.02"),
		noID)

	if ids, _ := readQuarantine(t, w, warehouse.QuarantineFilter{}); !sameSet(ids, uuid(2), uuid(3), uuid(4)) {
		t.Fatalf("all: %v, want 2, 3, 4 (not the record without an id)", ids)
	}
	for _, rule := range []string{"must be a known gateway", "gateway_id: must be a known gateway"} {
		if ids, _ := readQuarantine(t, w, warehouse.QuarantineFilter{Rule: rule}); !sameSet(ids, uuid(2), uuid(3)) {
			t.Errorf("rule %q: %v, want 2, 3", rule, ids)
		}
	}
	day := warehouse.QuarantineFilter{Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	if ids, _ := readQuarantine(t, w, day); !sameSet(ids, uuid(2)) {
		t.Errorf("window of Nov 1: %v, want 2", ids)
	}
	// In batches of one, each continuing after the last hash: all three once.
	var all []string
	after := ""
	for i := 0; i < 4; i++ {
		ids, last := readQuarantine(t, w, warehouse.QuarantineFilter{After: after, Limit: 1})
		if len(ids) == 0 {
			break
		}
		all, after = append(all, ids...), last
	}
	if !sameSet(all, uuid(2), uuid(3), uuid(4)) {
		t.Errorf("in batches: %v", all)
	}

	since, until := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)
	if n, _, err := w.CountQuarantined(ctx, since, until); err != nil || n != 4 {
		t.Fatalf("quarantined before the promotion: %d %v, want 4", n, err)
	}
	// Event 2 reaches the fact table (promoted, or sent valid again).
	load(t, w, "load-promoted", 10, event(uuid(2), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"))
	if ids, _ := readQuarantine(t, w, warehouse.QuarantineFilter{}); !sameSet(ids, uuid(3), uuid(4)) {
		t.Errorf("after the promotion: %v, want 3, 4", ids)
	}
	fact, err := w.CountFact(ctx, since, until)
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := w.CountQuarantined(ctx, since, until)
	if err != nil || n != 3 || fact+n != 5 {
		t.Fatalf("after the promotion: fact %d + quarantined %d (%v), want 2 + 3 = the 5 records sent", fact, n, err)
	}
}

// A quarantined record whose id the fact table holds in another case is
// resolved, as it is to commits (event_key); one whose id is not a UUID
// (even the same hex digits without hyphens) has no key and stays for a
// replay to try, as before.
func TestQuarantineFindsItsEventByKey(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	ctx := context.Background()
	id := "0a0b0c0d-e0f0-4abc-8def-00000000abcd"
	load(t, w, "load-k", 10,
		event(id, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		unknownGateway(event(strings.ToUpper(id), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01")),
		event("not-a-uuid", "2026-11-01T11:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		event(strings.ReplaceAll(id, "-", ""), "2026-11-01T12:00:00Z", "ada", "gpt-4o", "allow", "0.01"))
	var raws []string
	err := w.ReadQuarantine(ctx, warehouse.QuarantineFilter{Limit: 10}, func(r warehouse.QuarantinedRecord) error {
		raws = append(raws, r.Raw)
		return nil
	})
	slices.Sort(raws)
	if err != nil || len(raws) != 2 || !strings.Contains(raws[0], `"`+strings.ReplaceAll(id, "-", "")+`"`) || !strings.Contains(raws[1], `"not-a-uuid"`) {
		t.Errorf("records a replay may promote: %q (%v), want the two whose ids are not UUIDs", raws, err)
	}
	n, _, err := w.CountQuarantined(ctx, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
	if err != nil || n != 2 {
		t.Errorf("quarantined and unresolved: %d (%v), want 2", n, err)
	}
}

// The quarantine's count reads records quarantined at most 30 days
// before its window: one quarantined earlier, whose timestamp claims a
// time that far ahead of its arrival, is not counted in its hour, nor is
// one without a timestamp quarantined that long before.
func TestQuarantineCountIsBoundedByTheDedupWindow(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	ctx := context.Background()
	early, recent, earlyNoTime := uuid(61), uuid(62), uuid(63)
	load(t, w, "load-bound", 10,
		unknownGateway(event(early, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01")),
		unknownGateway(event(recent, "2026-11-01T11:00:00Z", "ada", "gpt-4o", "allow", "0.01")),
		event(earlyNoTime, "not a time", "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(64), "not a time either", "ada", "gpt-4o", "allow", "0.01"))
	since, until := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	n, unplaced, err := w.CountQuarantined(ctx, since, until)
	if err != nil || n != 2 || unplaced != 2 {
		t.Fatalf("all quarantined now: %d in the window, %d unplaced (%v); want 2 and 2", n, unplaced, err)
	}
	exec(t, fmt.Sprintf("UPDATE `%s.%s.%s` SET quarantined_at = TIMESTAMP '2026-10-01 00:00:00+00' WHERE event_id IN ('%s', '%s')",
		project, ds, schemas.TableQuarantine, early, earlyNoTime))
	n, unplaced, err = w.CountQuarantined(ctx, since, until)
	if err != nil || n != 1 || unplaced != 1 {
		t.Fatalf("two quarantined 31 days before the window: %d in the window, %d unplaced (%v); want 1 and 1", n, unplaced, err)
	}
}
