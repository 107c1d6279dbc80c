package activities

import (
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/warehouse"
)

// TestMergeLoadsPacksLoadsInOrder: three loads over the bound are
// committed in transactions of at most MaxBatchChunks chunks, taken in
// order, a load larger than what is left of a transaction split across
// two, and every chunk of every load committed exactly once.
func TestMergeLoadsPacksLoadsInOrder(t *testing.T) {
	bound := warehouse.MaxBatchChunks
	sizes := map[string]int{"a": bound - 50, "b": bound - 80, "c": 60}
	var loads []payload.MergeInput
	total := 0
	for _, id := range []string{"a", "b", "c"} {
		l := payload.MergeInput{LoadID: id, Source: "src-" + id}
		for i := range sizes[id] {
			l.Chunks = append(l.Chunks, payload.Chunk{Index: i, Rows: 1})
		}
		loads = append(loads, l)
		total += sizes[id]
	}
	n, err := checkMergeLoads(payload.MergeLoadsInput{Loads: loads})
	if err != nil || n != total {
		t.Fatalf("checkMergeLoads: %d chunks, %v; want %d", n, err, total)
	}
	committed := map[string]int{}
	var shape []string
	var order []string
	for i := 0; i < total; i += bound {
		batch := packLoads(loads, i, min(i+bound, total))
		chunks := 0
		var parts []string
		for _, l := range batch {
			if l.Source != "src-"+l.LoadID {
				t.Errorf("load %s committed with source %q", l.LoadID, l.Source)
			}
			parts = append(parts, fmt.Sprintf("%s:%d", l.LoadID, len(l.Chunks)))
			for _, c := range l.Chunks {
				key := fmt.Sprintf("%s/%d", l.LoadID, c.Index)
				committed[key]++
				order = append(order, key)
				chunks++
			}
		}
		if chunks > bound {
			t.Errorf("a transaction of %d chunks, at most %d", chunks, bound)
		}
		shape = append(shape, fmt.Sprint(parts))
	}
	// a fills all but 50 of the first; b's first 50 fill it, its other
	// bound-130 open the second, with c.
	want := fmt.Sprint([]string{fmt.Sprint([]string{fmt.Sprintf("a:%d", bound-50), "b:50"}), fmt.Sprint([]string{fmt.Sprintf("b:%d", bound-130), "c:60"})})
	if fmt.Sprint(shape) != want {
		t.Errorf("transactions %v, want %s", shape, want)
	}
	if len(committed) != total {
		t.Errorf("%d chunks committed, want %d", len(committed), total)
	}
	for k, times := range committed {
		if times != 1 {
			t.Errorf("%s committed %d times", k, times)
		}
	}
	if order[0] != "a/0" || order[len(order)-1] != fmt.Sprintf("c/%d", sizes["c"]-1) || order[sizes["a"]] != "b/0" {
		t.Errorf("chunks not in the loads' order: %v ... %v", order[:2], order[len(order)-2:])
	}

	// A load named twice cannot be committed as given: a clear, final error.
	_, err = checkMergeLoads(payload.MergeLoadsInput{Loads: []payload.MergeInput{loads[0], loads[0]}})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != payload.ErrTypeBadInput || !appErr.NonRetryable() {
		t.Fatalf("a load twice: %v, want a non-retryable %s", err, payload.ErrTypeBadInput)
	}
}

// A retried merge resumes at the start of the transaction its last
// attempt was in, under that attempt's bound, so that a transaction still
// running in BigQuery and the retry's are the same set of chunks (one job
// id): a heartbeat from before the bound was recorded (200 then) resumes
// at a multiple of 200 in transactions of 200, whatever MaxBatchChunks is.
func TestResumePlanKeepsTheLastAttemptsTransactions(t *testing.T) {
	max := warehouse.MaxBatchChunks
	cases := []struct {
		name       string
		p          MergeProgress
		resumed    bool
		start, got int
	}{
		{"first attempt", MergeProgress{}, false, 0, max},
		{"heartbeat without a bound", MergeProgress{Done: 200}, true, 200, legacyBatchChunks},
		{"mid-transaction without a bound", MergeProgress{Done: 450}, true, 400, legacyBatchChunks},
		{"today's bound", MergeProgress{Done: max + 7, Batch: max}, true, max, max},
		{"a smaller bound", MergeProgress{Done: 250, Batch: 100}, true, 200, 100},
		{"a larger bound (downgrade)", MergeProgress{Done: max + 1, Batch: 2 * max}, true, 0, max},
		{"everything committed", MergeProgress{Done: 1000, Batch: 300}, true, 1000, 300},
	}
	for _, c := range cases {
		start, batch := resumePlan(c.p, c.resumed, 1000)
		if start != c.start || batch != c.got {
			t.Errorf("%s: resume at %d in transactions of %d, want %d and %d", c.name, start, batch, c.start, c.got)
		}
	}
}
