package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
)

// TestACommitThatDiedBeforeItsLookIsLookedAtAgain: load-b commits event
// x while load-a's commit of x lands beside it (after load-b's
// transaction began), and load-b's worker dies before its look: x is
// doubled. What comes next removes the copy: load-b's retry (the ledger
// grew since its transaction began) or, when that retry never comes (its
// attempts used up), a later load carrying x, a replay (load-b never
// recorded that it converged, so the commits after it look).
func TestACommitThatDiedBeforeItsLookIsLookedAtAgain(t *testing.T) {
	t.Parallel()
	for _, next := range []string{"retry", "replay"} {
		t.Run(next, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ds := fmt.Sprintf("ds_died_%d", dsSeq.Add(1))
			w := newWarehouseIn(t, ds)
			x, y := uuid(100), uuid(101)
			xEvent := event(x, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01")
			dir, man := split(t, "load-b", 10, xEvent, event(y, "2026-11-01T11:00:00Z", "bo", "gpt-4o", "allow", "0.02"))
			for _, c := range man.Chunks {
				stage(t, w, dir, "load-b", c)
			}
			killed := errors.New("worker killed before its look")
			w.SetCommitHook(func() error {
				w.SetCommitHook(nil)
				copyRowAs(t, ds, schemas.TableFact, bqschema.EventRowSchema(), "event_id", x, "load-a")
				addLedgerRow(t, ds, "load-a")
				return killed
			})
			if err := w.CommitBatch(ctx, "load-b", "export", man.Chunks); !errors.Is(err, killed) {
				t.Fatalf("commit of load-b: %v, want the kill", err)
			}
			if n := factIDs(t, w)[x]; n != 2 {
				t.Fatalf("setup: %s has %d rows, want the raced 2", x, n)
			}
			switch next {
			case "retry":
				if err := w.CommitBatch(ctx, "load-b", "export", man.Chunks); err != nil {
					t.Fatal(err)
				}
			case "replay":
				load(t, w, "load-r", 10, xEvent)
			}
			if ids := factIDs(t, w); len(ids) != 2 || ids[x] != 1 || ids[y] != 1 {
				t.Fatalf("fact ids %v, want x and y once each", ids)
			}
		})
	}
}
