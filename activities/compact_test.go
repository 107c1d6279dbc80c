package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
)

func pending(id string, chunks int) payload.PendingLoad {
	m := payload.Manifest{LoadID: id, Rows: int64(chunks)}
	for i := range chunks {
		m.Chunks = append(m.Chunks, payload.Chunk{Index: i, Key: "loads/" + id + "/chunk.ndjson", Rows: 1, MinDate: "2026-11-01", MaxDate: "2026-11-01"})
	}
	return payload.PendingLoad{Source: payload.SourcePull, Manifest: m}
}

func loadIDs(r payload.PendingLoadsResult) string {
	var ids []string
	for _, p := range r.Loads {
		ids = append(ids, p.Manifest.LoadID)
	}
	return strings.Join(ids, ",")
}

// compactActs runs the compaction's activities on a staging directory,
// each in a test activity environment (they heartbeat).
type compactActs struct {
	t   *testing.T
	a   *Activities
	env *testsuite.TestActivityEnvironment
}

func newCompactActs(t *testing.T, root string) compactActs {
	var s testsuite.WorkflowTestSuite
	a := &Activities{Store: staging.Dir{Root: root}}
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return compactActs{t, a, env}
}

func (c compactActs) mark(p payload.PendingLoad) error {
	_, err := c.env.ExecuteActivity(c.a.DeferLoad, p)
	return err
}

func (c compactActs) finish(ids ...string) error {
	_, err := c.env.ExecuteActivity(c.a.FinishLoads, ids)
	return err
}

func (c compactActs) list(in payload.PendingLoadsInput) (payload.PendingLoadsResult, error) {
	var r payload.PendingLoadsResult
	v, err := c.env.ExecuteActivity(c.a.PendingLoads, in)
	if err == nil {
		err = v.Get(&r)
	}
	return r, err
}

// Marks written (twice: a retry), listed within both bounds, removed
// with the loads' files.
func TestPendingLoadsAreMarkedListedAndFinished(t *testing.T) {
	root := t.TempDir()
	a := newCompactActs(t, root)
	for _, id := range []string{"A", "B"} {
		if err := os.MkdirAll(filepath.Join(root, "loads", id), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "loads", id, "chunk-00000.ndjson"), []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []payload.PendingLoad{pending("A", 1), pending("B", 3), pending("B", 3), pending("C", 1)} {
		if err := a.mark(p); err != nil {
			t.Fatal(err)
		}
	}
	all, err := a.list(payload.PendingLoadsInput{})
	if err != nil || loadIDs(all) != "A,B,C" || all.More || all.Loads[1].Source != payload.SourcePull || len(all.Loads[1].Manifest.Chunks) != 3 {
		t.Fatalf("pending %+v %v, want A, B (3 chunks), C", all, err)
	}
	// At most 2 chunks: A, and B would exceed them.
	some, err := a.list(payload.PendingLoadsInput{MaxChunks: 2})
	if err != nil || loadIDs(some) != "A" || !some.More {
		t.Fatalf("pending within 2 chunks %+v %v, want A and more", some, err)
	}
	// A load larger than the bound alone is still listed, or it would
	// never be committed.
	if err := a.finish("A"); err != nil {
		t.Fatal(err)
	}
	some, err = a.list(payload.PendingLoadsInput{MaxChunks: 2})
	if err != nil || loadIDs(some) != "B" || !some.More {
		t.Fatalf("pending within 2 chunks after A %+v %v, want B alone and more", some, err)
	}
	some, err = a.list(payload.PendingLoadsInput{MaxLoads: 1})
	if err != nil || loadIDs(some) != "B" || !some.More {
		t.Fatalf("pending, 1 load %+v %v, want B and more", some, err)
	}
	// A load this run could not commit is passed over, bounds and all.
	some, err = a.list(payload.PendingLoadsInput{MaxChunks: 2, Exclude: []string{"B"}})
	if err != nil || loadIDs(some) != "C" || some.More {
		t.Fatalf("pending without B %+v %v, want C alone", some, err)
	}
	if err := a.finish("B", "C", "C"); err != nil { // finishing again does nothing
		t.Fatal(err)
	}
	if none, err := a.list(payload.PendingLoadsInput{}); err != nil || len(none.Loads) != 0 || none.More {
		t.Fatalf("pending after all finished %+v %v", none, err)
	}
	if files, err := (staging.Dir{Root: root}).List(context.Background(), "loads"); err != nil || len(files) != 0 {
		t.Fatalf("files left of finished loads: %v %v", files, err)
	}
}

// A mark that is not one ktpipe wrote whole is not taken for a load: it
// is passed over and named, and the loads after it are still listed, so
// one bad file does not hold back every other commit.
func TestPendingLoadsPassesOverAForeignMark(t *testing.T) {
	root := t.TempDir()
	a := newCompactActs(t, root)
	for _, id := range []string{"A", "D"} {
		if err := a.mark(pending(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// B and C are marks that cannot be read; a file deeper under A's
	// mark is no mark at all, and does not pass A over.
	for key, body := range map[string]string{"pending/B/load.json": "not json", "pending/C/load.json": `{"Manifest":{"LoadID":"A"}}`, "pending/A/x/load.json": "junk"} {
		path := filepath.Join(root, key)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.list(payload.PendingLoadsInput{})
	if err != nil || loadIDs(got) != "A,D" || strings.Join(got.Unreadable, ",") != "B,C" {
		t.Fatalf("pending %+v %v, want A and D listed, B and C unreadable", got, err)
	}
	// Passed over once named: the next listing excludes them.
	got, err = a.list(payload.PendingLoadsInput{Exclude: got.Unreadable})
	if err != nil || loadIDs(got) != "A,D" || len(got.Unreadable) != 0 {
		t.Fatalf("pending excluding B and C %+v %v, want A and D alone", got, err)
	}
	// Bounded: past MaxLoads unreadable marks the listing fails, naming one.
	_, err = a.list(payload.PendingLoadsInput{MaxLoads: 1})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || !strings.Contains(err.Error(), "pending/C/load.json") {
		t.Errorf("2 unreadable marks, 1 allowed: err %v, want a non-retryable error naming the second", err)
	}
}

// A mark the store fails to read (here it hands back a directory, whose
// reads fail with EISDIR, standing in for a disk error) is not a bad
// mark: the listing fails for a retry, naming nothing to replay.
func TestPendingLoadsRetriesAReadErrorOfTheStore(t *testing.T) {
	root := t.TempDir()
	a := newCompactActs(t, root)
	if err := a.mark(pending("E", 1)); err != nil {
		t.Fatal(err)
	}
	a.a.Store = unreadableStore{staging.Dir{Root: root}}
	got, err := a.list(payload.PendingLoadsInput{})
	var appErr *temporal.ApplicationError
	if err == nil || (errors.As(err, &appErr) && (appErr.NonRetryable() || appErr.Type() == payload.ErrTypeMalformed)) || len(got.Unreadable) > 0 {
		t.Fatalf("listing with a mark the store cannot read: %+v %v, want a retryable error", got, err)
	}
}

// unreadableStore opens every key as its store's root directory: a file
// whose reads fail.
type unreadableStore struct{ staging.Dir }

func (s unreadableStore) Open(context.Context, string) (*os.File, error) { return os.Open(s.Root) }

// The pull's chunks stream into live_events in requests of at most
// MaxLiveRows rows, every row once per landing.
func TestLandLiveChunksStreamsEveryRow(t *testing.T) {
	root := t.TempDir()
	c := newCompactActs(t, root)
	var sizes []int
	var ids []string
	c.a.InsertLive = func(_ context.Context, rows []json.RawMessage) error {
		sizes = append(sizes, len(rows))
		for _, r := range rows {
			var row struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal(r, &row); err != nil {
				t.Errorf("row %s: %v", r, err)
			}
			ids = append(ids, row.EventID)
		}
		return nil
	}
	var file strings.Builder
	for i := range 1201 {
		fmt.Fprintf(&file, "{\"event_id\":\"e%d\"}\n", i)
	}
	if err := os.MkdirAll(filepath.Join(root, "loads", "L"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "loads", "L", "chunk-00000.ndjson"), []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	in := payload.ChunksInput{LoadID: "L", Chunks: []payload.Chunk{
		{Index: 0, Key: "loads/L/chunk-00000.ndjson", Rows: 1201},
		{Index: 1, Key: "loads/L/chunk-00001.ndjson"}, // no rows: no file to read
	}}
	v, err := c.env.ExecuteActivity(c.a.LandLiveChunks, in)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	if err := v.Get(&rows); err != nil || rows != 1201 {
		t.Fatalf("rows %d %v, want 1201", rows, err)
	}
	if fmt.Sprint(sizes) != "[500 500 201]" || len(ids) != 1201 || ids[0] != "e0" || ids[1200] != "e1200" {
		t.Errorf("requests of %v rows, %d ids, want 500, 500, 201 and every row once", sizes, len(ids))
	}
}

// The pending gauges count the marks DeferLoad writes and age the oldest
// by when it was written; a finished load leaves them, and with none
// pending the age is 0, not the age of the last one seen.
func TestPendingGaugesReadTheMarks(t *testing.T) {
	root := t.TempDir()
	a := newCompactActs(t, root)
	m := metrics.New()
	t.Cleanup(func() { m.Close() })
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for id, age := range map[string]time.Duration{"A": 3 * time.Hour, "B": 90 * time.Minute, "C": time.Minute} {
		if err := a.mark(pending(id, 1)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(PendingKey(id))), now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	// A write in progress is not a mark.
	if err := os.WriteFile(filepath.Join(root, "pending", "C", ".tmp-1"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(root, "pending", "C", ".tmp-1"), now.Add(-9*time.Hour), now.Add(-9*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// expect compares the gauges with a look that found loads marks, the
	// oldest written at oldest ("": none, and no time served).
	expect := func(loads, oldest string) {
		t.Helper()
		want := `
# HELP ktpipe_pending_loads Loads marked pending in staging (staged, waiting for the compaction to commit them) at this worker's last look, every KTPIPE_METRICS_REFRESH.
# TYPE ktpipe_pending_loads gauge
ktpipe_pending_loads ` + loads + "\n"
		if oldest != "" {
			want = `
# HELP ktpipe_oldest_pending_load_timestamp_seconds Unix time the oldest pending load's mark was written to staging, at this worker's last successful look (every KTPIPE_METRICS_REFRESH); absent when none is pending. A failed look keeps it.
# TYPE ktpipe_oldest_pending_load_timestamp_seconds gauge
ktpipe_oldest_pending_load_timestamp_seconds ` + oldest + want
		}
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "ktpipe_pending_loads", "ktpipe_oldest_pending_load_timestamp_seconds"); err != nil {
			t.Error(err)
		}
	}
	look := func() {
		t.Helper()
		if err := RefreshPendingGauges(context.Background(), a.a.Store, m); err != nil {
			t.Fatal(err)
		}
	}
	unix := func(age time.Duration) string { return strconv.FormatInt(now.Add(-age).Unix(), 10) }
	lookWent := func(want string) {
		t.Helper()
		w := ""
		if want != "" {
			w = `
# HELP ktpipe_pending_look_success 1 when this worker's last look at the compaction's pending marks in staging (every KTPIPE_METRICS_REFRESH) succeeded, 0 when it failed; absent before the first look.
# TYPE ktpipe_pending_look_success gauge
ktpipe_pending_look_success ` + want + "\n"
		}
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(w), "ktpipe_pending_look_success"); err != nil {
			t.Error(err)
		}
	}
	lookWent("") // no look yet: nothing to alert on
	look()
	expect("3", unix(3*time.Hour))
	lookWent("1")
	if err := a.finish("A"); err != nil {
		t.Fatal(err)
	}
	look()
	expect("2", unix(90*time.Minute))
	// A look that fails keeps the oldest time: the alert's age grows on.
	if err := RefreshPendingGauges(context.Background(), failingWalker{a.a.Store.(staging.Dir)}, m); err == nil {
		t.Error("a failing listing: no error")
	}
	expect("2", unix(90*time.Minute))
	lookWent("0")
	if err := a.finish("B", "C"); err != nil {
		t.Fatal(err)
	}
	look()
	expect("0", "") // none pending: no time served
	lookWent("1")
	// A look cut short because the worker stops is not a failed look.
	if err := RefreshPendingGauges(context.Background(), cancelledWalker{a.a.Store.(staging.Dir)}, m); err == nil {
		t.Error("a cancelled listing: no error")
	}
	lookWent("1")
	// A store that cannot list with times is an error, not a 0.
	if err := RefreshPendingGauges(context.Background(), slowStore{}, m); err == nil {
		t.Error("a store without WalkUnder: no error")
	}
	lookWent("0")
}

// cancelledWalker is a listing cut short by its context's end.
type cancelledWalker struct{ staging.Dir }

func (cancelledWalker) WalkUnder(context.Context, string, func(staging.Entry) error) error {
	return fmt.Errorf("staging walk pending: %w", context.Canceled)
}

// failingWalker lists nothing: a bucket that errs, or a listing past its
// timeout.
type failingWalker struct{ staging.Dir }

func (failingWalker) WalkUnder(context.Context, string, func(staging.Entry) error) error {
	return errors.New("list pending: 503 Service Unavailable")
}
