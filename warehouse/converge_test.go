package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/warehouse"
)

// TestACommitThatDiedBeforeItsLookIsLookedAtAgain: load-b commits event
// x while load-a's commit of x lands beside it (after load-b's
// transaction began), and load-b's worker dies before its look: x is
// doubled. What comes next removes the copy: load-b's retry (the ledger
// grew since its transaction began) or, when that retry never comes (its
// attempts used up), a later load carrying x, a replay (load-b never
// recorded that it converged, so the commits after it look). Retries as
// other sets (a compaction that re-listed with load-c too, or split the
// loads one by one) converge load-b's set once their looks have covered
// all its chunks, and only then.
func TestACommitThatDiedBeforeItsLookIsLookedAtAgain(t *testing.T) {
	t.Parallel()
	for _, next := range []string{"retry", "replay", "wider retry", "wider retry without a chunk", "split retry"} {
		t.Run(next, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ds := fmt.Sprintf("ds_died_%d", dsSeq.Add(1))
			w := newWarehouseIn(t, ds)
			x, y := uuid(100), uuid(101)
			xEvent := event(x, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01")
			dir, man := split(t, "load-b", 1, xEvent, event(y, "2026-11-01T11:00:00Z", "bo", "gpt-4o", "allow", "0.02"))
			if len(man.Chunks) != 2 {
				t.Fatalf("setup: load-b in %d chunks, want 2", len(man.Chunks))
			}
			for _, c := range man.Chunks {
				stage(t, w, dir, "load-b", c)
			}
			killed := errors.New("worker killed before its look")
			w.SetCommitHook(func() error {
				w.SetCommitHook(nil)
				copyRowAs(t, ds, schemas.TableFact, bqschema.FactSchema(), "event_id", x, "load-a")
				addLedgerRow(t, ds, "load-a")
				return killed
			})
			if err := w.CommitBatch(ctx, "load-b", "export", man.Chunks); !errors.Is(err, killed) {
				t.Fatalf("commit of load-b: %v, want the kill", err)
			}
			if n := factIDs(t, w)[x]; n != 2 {
				t.Fatalf("setup: %s has %d rows, want the raced 2", x, n)
			}
			// load-b's set, the only one commit_log holds so far.
			unconverged := func() []string {
				t.Helper()
				var sets []string
				for _, r := range queryRows(t, fmt.Sprintf("SELECT commit_set FROM `%s.%s.%s` GROUP BY commit_set HAVING COUNTIF(what = 'converged') = 0 ORDER BY commit_set", project, ds, schemas.TableCommits)) {
					set, ok := r[0].(string)
					if !ok {
						t.Fatalf("commit_set: got %T", r[0])
					}
					sets = append(sets, set)
				}
				return sets
			}
			dead := unconverged()
			if len(dead) != 1 {
				t.Fatalf("setup: unconverged sets %v, want load-b's alone", dead)
			}
			switch next {
			case "retry":
				if err := w.CommitBatch(ctx, "load-b", "export", man.Chunks); err != nil {
					t.Fatal(err)
				}
			case "replay":
				load(t, w, "load-r", 10, xEvent)
			case "wider retry", "wider retry without a chunk", "split retry":
				seen := record(w)
				bChunks := man.Chunks
				if next != "wider retry" {
					bChunks = man.Chunks[:1] // x's
				}
				cDir, cMan := split(t, "load-c", 10, event(uuid(103), "2026-11-01T11:30:00Z", "cy", "gpt-4o", "allow", "0.04"))
				for _, c := range cMan.Chunks {
					stage(t, w, cDir, "load-c", c)
				}
				if err := w.CommitLoads(ctx, []warehouse.LoadChunks{{LoadID: "load-b", Source: "export", Chunks: bChunks}, {LoadID: "load-c", Source: "pull", Chunks: cMan.Chunks}}); err != nil {
					t.Fatal(err)
				}
				// The dead set is asked about before the look: that look
				// must see its rows.
				asked, looked := -1, -1
				for i, st := range seen() {
					switch {
					case asked < 0 && strings.HasPrefix(st.What, "find unconverged sets sharing chunks"):
						asked = i
					case looked < 0 && strings.HasPrefix(st.What, "look for doubled rows"):
						looked = i
					}
				}
				if asked < 0 || looked < asked {
					t.Fatalf("the wider set asked for unconverged sets at statement %d and looked at %d, want asked before the look", asked, looked)
				}
				if next == "split retry" {
					if err := w.CommitBatch(ctx, "load-b", "export", man.Chunks[1:]); err != nil {
						t.Fatal(err)
					}
				}
			}
			ids := factIDs(t, w)
			wantIDs := 2
			if strings.HasPrefix(next, "wider") || next == "split retry" {
				wantIDs = 3 // load-c's too
			}
			for id, n := range ids {
				if n != 1 {
					t.Errorf("fact id %s held %d times, want once", id, n)
				}
			}
			if ids[x] != 1 || ids[y] != 1 || len(ids) != wantIDs {
				t.Fatalf("fact ids %v, want x, y and %d in all, once each", ids, wantIDs)
			}
			// load-b's set itself, as commit_log says it; every other set
			// recorded that it converged.
			var wantSets []string
			if next == "replay" || next == "wider retry without a chunk" {
				wantSets = dead
			}
			if got := unconverged(); fmt.Sprint(got) != fmt.Sprint(wantSets) {
				t.Errorf("after the %s: unconverged sets %v, want %v", next, got, wantSets)
			}
			// The next commit looks only while load-b has not converged:
			// its retry converged it, and so did sets whose looks covered
			// all its chunks; a replay does not, nor a set that lacks a
			// chunk.
			seen := record(w)
			load(t, w, "load-d", 10, event(uuid(102), "2026-11-01T12:00:00Z", "cy", "gpt-4o", "allow", "0.03"))
			want := map[string]int{"retry": 0, "replay": 1, "wider retry": 0, "wider retry without a chunk": 1, "split retry": 0}[next]
			if n := looks(seen()); n != want {
				t.Errorf("load-d after the %s: %d looks for doubled rows, want %d", next, n, want)
			}
		})
	}
}

// looks counts the looks for doubled rows among statements.
func looks(statements []warehouse.Statement) int {
	n := 0
	for _, s := range statements {
		if strings.HasPrefix(s.What, "look for doubled rows") {
			n++
		}
	}
	return n
}

// TestCommitsLookAfterAnUpgrade: a dataset loaded by a version without
// commit_log gets an "upgrade" row that never converges, so every commit
// looks (for its window), as that version's did; a new dataset does not,
// however often a worker starts before its first commit.
func TestCommitsLookAfterAnUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_upgrade_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	if _, err := w.EnsureSchema(ctx); err != nil { // a second worker's start
		t.Fatal(err)
	}
	seen := record(w)
	load(t, w, "load-1", 10, event(uuid(110), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"))
	if n := looks(seen()); n != 0 {
		t.Fatalf("a new dataset's first commit looked %d times, want 0", n)
	}
	// The dataset as an older version left it: no commit_log.
	if err := bq.Dataset(ds).Table(schemas.TableCommits).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second start adds no second row
		if _, err := w.EnsureSchema(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(queryRows(t, fmt.Sprintf("SELECT commit_set, what FROM `%s.%s.%s`", project, ds, schemas.TableCommits))); got != "[[upgrade commit]]" {
		t.Fatalf("commit_log %s, want the upgrade's row alone", got)
	}
	load(t, w, "load-2", 10, event(uuid(111), "2026-11-01T11:00:00Z", "bo", "gpt-4o", "allow", "0.02"))
	if n := looks(seen()); n != 1 {
		t.Errorf("after the upgrade a commit looked %d times, want 1", n)
	}
}
