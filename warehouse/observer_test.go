package warehouse_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/ktpipe/ktpipe/warehouse"
)

// TestStatementObserverSeesEveryJob: the observer the cost model counts
// with sees a chunk's load job and its commit script, and a query, each
// once, and the load still lands as without it.
func TestStatementObserverSeesEveryJob(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	seen := record(w)
	load(t, w, "obs-1", 10, event(uuid(31), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"))
	var loads, commits, ledgerReads int
	for _, s := range seen() {
		switch {
		case s.Load != "" && s.SQL == "" && strings.HasPrefix(s.Load, "stg_"):
			loads++
		case strings.Contains(s.SQL, "BEGIN TRANSACTION") && strings.Contains(s.SQL, "fact_ai_event"):
			commits++
		case strings.HasPrefix(s.SQL, "SELECT load_id, chunk FROM"):
			ledgerReads++
		}
	}
	if loads != 1 || commits != 1 || ledgerReads != 1 {
		t.Fatalf("observer saw %d staging loads, %d commit scripts, %d ledger reads; want 1 each: %+v", loads, commits, ledgerReads, seen())
	}
	if ids := factIDs(t, w); len(ids) != 1 {
		t.Fatalf("fact %v", ids)
	}
}

// record observes w's statements; the returned function gives those seen
// so far.
func record(w *warehouse.Warehouse) func() []warehouse.Statement {
	var mu sync.Mutex
	var seen []warehouse.Statement
	w.SetStatementObserver(func(s warehouse.Statement) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	})
	return func() []warehouse.Statement {
		mu.Lock()
		defer mu.Unlock()
		return append([]warehouse.Statement(nil), seen...)
	}
}
