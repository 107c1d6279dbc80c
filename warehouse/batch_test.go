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

// TestBatchCommitsManyChunksInOneTransaction: a batch of chunks is one
// commit job, an event id or invalid record in two chunks of the batch
// lands once, committing the batch again adds nothing, and no DELETE runs
// when nothing was doubled.
func TestBatchCommitsManyChunksInOneTransaction(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_batch_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	seen := record(w)
	bad := strings.Replace(event(uuid(63), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1)
	resent := event(uuid(60), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01")
	dir, man := split(t, "load-b", 2,
		resent, event(uuid(61), "2026-11-01T23:00:00Z", "bo", "gpt-4o", "block", "0.02", "pii"), bad,
		resent, event(uuid(62), "2026-11-02T01:00:00Z", "ada", "gpt-4o", "allow", "0.01"), bad)
	if len(man.Chunks) < 2 {
		t.Fatalf("%d chunks, want the resent event and record in two", len(man.Chunks))
	}
	for _, c := range man.Chunks {
		stage(t, w, dir, "load-b", c)
	}
	for range 2 { // the second run is a retry after the commit took effect
		if err := w.CommitBatch(context.Background(), "load-b", "export", man.Chunks); err != nil {
			t.Fatal(err)
		}
	}
	commits := 0
	for _, s := range seen() {
		if s.What == "commit batch" {
			commits++
		}
		// No commit landed beside these: the ledger did not grow.
		if strings.HasPrefix(s.What, "remove doubled rows") || strings.HasPrefix(s.What, "look for doubled rows") {
			t.Errorf("ran %q with no commit beside", s.What)
		}
	}
	if commits != 1 {
		t.Errorf("%d commit jobs for %d chunks run twice, want 1", commits, len(man.Chunks))
	}
	// A batch of other chunks runs under another job id, so its SQL runs
	// again over committed chunks: it must add nothing either. It adds no
	// ledger row, so it is taken for the retry of a commit whose look may
	// not have run, and looks.
	if err := w.CommitBatch(context.Background(), "load-b", "export", man.Chunks[1:]); err != nil {
		t.Fatal(err)
	}
	if n := looks(seen()); n != 1 {
		t.Errorf("%d looks for doubled rows after committing chunks again, want 1", n)
	}
	// A retry of the first batch whose commit_log row is gone (committed
	// by an older version, or longer ago than the window) looks too.
	exec(t, fmt.Sprintf("DELETE FROM `%s.%s.%s` WHERE TRUE", project, ds, schemas.TableCommits))
	if err := w.CommitBatch(context.Background(), "load-b", "export", man.Chunks); err != nil {
		t.Fatal(err)
	}
	if n := looks(seen()); n != 2 {
		t.Errorf("%d looks for doubled rows after a retry without its commit_log row, want 2", n)
	}
	usage := queryRows(t, fmt.Sprintf("SELECT SUM(events), COUNT(DISTINCT chunk) FROM `%s.%s.%s`", project, ds, schemas.TableUsage))
	users := queryRows(t, fmt.Sprintf("SELECT COUNT(*) FROM `%s.%s.%s`", project, ds, schemas.TableUsers))
	if fmt.Sprint(usage, users) != "[[3 1]] [[2]]" {
		t.Errorf("fact_usage (events, commits) %v and fact_users %v, want [[3 1]] [[2]]: the batch counted once", usage, users)
	}
	if ids := factIDs(t, w); len(ids) != 3 || ids[uuid(60)] != 1 || ids[uuid(61)] != 1 || ids[uuid(62)] != 1 {
		t.Fatalf("fact ids %v, want 60, 61, 62 once each", ids)
	}
	q, err := w.QuarantinedIDs(context.Background())
	if err != nil || len(q) != 1 || len(q[uuid(63)]) != 1 {
		t.Fatalf("quarantine %v (%v), want %s once", q, err, uuid(63))
	}
	done, err := w.Committed(context.Background(), "load-b")
	if err != nil || len(done) != len(man.Chunks) {
		t.Fatalf("ledger %v (%v), want every chunk of %d", done, err, len(man.Chunks))
	}
	chk, err := w.CheckLoad(context.Background(), "load-b")
	// The ledger keeps each chunk's own counts: the resent event and
	// record are in both chunks.
	if err != nil || chk.RawRows != 3 || chk.MissingInFact != 0 || chk.LedgerRows != 4 || chk.LedgerQuar != 2 {
		t.Fatalf("completeness %+v %v, want 3 raw rows, none missing, ledger 4 rows and 2 quarantined", chk, err)
	}
}

// TestDimensionsComeFromWhatCommitsAdded: the refresh reads fact_usage
// and fact_users, never the fact table; a resent event counts once; and
// a dataset older than those tables gets them seeded from the fact table.
func TestDimensionsComeFromWhatCommitsAdded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_dims_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	load(t, w, "load-d1", 2,
		event(uuid(70), "2026-10-30T10:00:00Z", "ada", "gpt-4o", "allow", "0.10"),
		event(uuid(71), "2026-11-01T11:00:00Z", "bo", "gpt-4o", "block", "0.20", "pii"),
		event(uuid(72), "2026-11-02T09:00:00Z", "cy", "gpt-4o-mini", "allow", "0.90"))
	// A race: load-a's commit lands beside load-d2's (see
	// TestOverlappingLoadsConvergeToOneRowPerID) with event 71, and
	// counts it in fact_usage too. load-d2 looks, removes one of the
	// rows, and takes it out of fact_usage.
	w.SetCommitHook(func() error {
		w.SetCommitHook(nil)
		copyRowAs(t, ds, schemas.TableFact, bqschema.FactSchema(), "event_id", uuid(71), "load-a")
		exec(t, fmt.Sprintf("INSERT INTO `%s.%s.%s` VALUES (DATE '2026-11-01', 'openai', 'gpt-4o', 1, NUMERIC '0.20', 150, 'load-a', 0)", project, ds, schemas.TableUsage))
		addLedgerRow(t, ds, "load-a")
		return nil
	})
	// Resent with another cost: the fact table keeps the first, and so
	// must cost_per_1k.
	load(t, w, "load-d2", 2, event(uuid(70), "2026-10-30T10:00:00Z", "ada", "gpt-4o", "allow", "0.50"),
		event(uuid(71), "2026-11-01T11:00:00Z", "bo", "gpt-4o", "block", "0.20", "pii"))
	if ids := factIDs(t, w); len(ids) != 3 || ids[uuid(71)] != 1 {
		t.Fatalf("fact ids %v, want 70, 71, 72 once each", ids)
	}
	folds := 0 // refreshes that folded fact_usage
	// As activities.RefreshDimensions: fold when past the bound, refresh.
	refresh := func() string {
		t.Helper()
		seen := record(w)
		f, err := w.FoldUsage(ctx)
		if err == nil {
			err = w.RefreshDimensions(ctx, nil, nil, nil)
		}
		w.SetStatementObserver(nil)
		if err != nil {
			t.Fatal(err)
		}
		if f.Folded {
			folds++
		}
		for _, s := range seen() {
			if strings.Contains(s.SQL, schemas.TableFact+"`") {
				t.Errorf("refresh read the fact table: %s", s.What)
			}
		}
		return fmt.Sprint(
			queryRows(t, fmt.Sprintf("SELECT model, CAST(cost_per_1k AS STRING) FROM `%s.%s.dim_model` ORDER BY model", project, ds)),
			queryRows(t, fmt.Sprintf("SELECT `user` FROM `%s.%s.dim_user` ORDER BY `user`", project, ds)),
			queryRows(t, fmt.Sprintf("SELECT MIN(`date`), MAX(`date`), COUNT(*) FROM `%s.%s.dim_date`", project, ds)))
	}
	// gpt-4o: 0.30 for 300 tokens; gpt-4o-mini: 0.90 for 150.
	want := "[[gpt-4o 1] [gpt-4o-mini 6]] [[ada] [bo] [cy]] [[2026-10-30 2026-11-02 4]]"
	if got := refresh(); got != want {
		t.Fatalf("dimensions %s, want %s", got, want)
	}
	usage := fmt.Sprintf("`%s.%s.%s`", project, ds, schemas.TableUsage)
	// Five rows (three of load-d1's commit, load-a's, load-d2's
	// correction) are within the default bound: no fold.
	if folds != 0 {
		t.Fatalf("%d folds of fact_usage's 5 rows under the default bound", folds)
	}
	// Past the bound, the refresh folds them into a row a (date,
	// provider, model) with the net sums, and the dimensions stay.
	w.SetUsageFoldRows(2)
	if got := refresh(); got != want || folds != 1 {
		t.Fatalf("dimensions after a fold %s (%d folds), want %s (1 fold)", got, folds, want)
	}
	folded := fmt.Sprintf("SELECT event_date, model, events, CAST(cost AS STRING), chunk FROM %s ORDER BY event_date, model", usage)
	if got, want := fmt.Sprint(queryRows(t, folded)), "[[2026-10-30 gpt-4o 1 0.1 -2] [2026-11-01 gpt-4o 1 0.2 -2] [2026-11-02 gpt-4o-mini 1 0.9 -2]]"; got != want {
		t.Fatalf("fact_usage after the fold %s, want %s", got, want)
	}
	// Its own rows are not counted again: the next refresh does not fold.
	if got := refresh(); got != want || folds != 1 {
		t.Fatalf("dimensions after a refresh past a fold %s (%d folds), want %s (still 1)", got, folds, want)
	}
	// Three rows more, one on a folded key: unfolded they give the
	// dimensions a second fold must keep, and the fold sums them with the
	// first fold's rows, once each.
	load(t, w, "load-d3", 1,
		event(uuid(73), "2026-10-30T12:00:00Z", "ada", "gpt-4o", "allow", "0.30"),
		event(uuid(74), "2026-11-02T12:00:00Z", "ada", "gpt-4o", "allow", "0.40"),
		event(uuid(75), "2026-11-03T12:00:00Z", "ada", "gpt-4o-mini", "allow", "0.05"))
	w.SetUsageFoldRows(0)
	unfolded := refresh()
	if folds != 1 {
		t.Fatalf("%d folds after a refresh under the default bound, want still 1", folds)
	}
	w.SetUsageFoldRows(2)
	if got := refresh(); got != unfolded || folds != 2 {
		t.Fatalf("dimensions after a second fold %s (%d folds), want %s unfolded (2 folds)", got, folds, unfolded)
	}
	if got, want := fmt.Sprint(queryRows(t, folded)), "[[2026-10-30 gpt-4o 2 0.4 -2] [2026-11-01 gpt-4o 1 0.2 -2] [2026-11-02 gpt-4o 1 0.4 -2] [2026-11-02 gpt-4o-mini 1 0.9 -2] [2026-11-03 gpt-4o-mini 1 0.05 -2]]"; got != want {
		t.Fatalf("fact_usage after the second fold %s, want %s", got, want)
	}
	// Past dim_user's bound (3 users, 2 allowed) the refresh fails naming
	// it, and holds no more than the bound.
	w.SetMaxDimUsers(2)
	if err := w.RefreshDimensions(ctx, nil, nil, nil); !errors.Is(err, warehouse.ErrTooManyUsers) || !strings.Contains(err.Error(), "more than 2:") || !strings.Contains(err.Error(), "KTPIPE_MAX_DIM_USERS") {
		t.Fatalf("refresh of 3 users under a bound of 2: %v, want the bound named", err)
	}
	w.SetMaxDimUsers(0)
	// An older dataset: no fact_usage, no fact_users, never seeded.
	for _, table := range []string{schemas.TableUsage, schemas.TableUsers} {
		if err := bq.Dataset(ds).Table(table).Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.SetCheckpoint(ctx, "usage_seeded", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if got := refresh(); got != unfolded {
		t.Fatalf("dimensions after seeding %s, want %s", got, unfolded)
	}
}

// TestLostStagingNamesItsChunk: a batch whose chunk's staging table is
// gone, and not committed, fails with the chunk's number (MergeLoad
// stages that chunk again); once committed, a missing table is fine.
func TestLostStagingNamesItsChunk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_lost_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	dir, man := split(t, "load-l", 1,
		event(uuid(80), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(81), "2026-11-01T11:00:00Z", "bo", "gpt-4o", "allow", "0.01"))
	for _, c := range man.Chunks {
		stage(t, w, dir, "load-l", c)
	}
	if err := bq.Dataset(ds).Table("stg_load_l_00001").Delete(ctx); err != nil {
		t.Fatal(err)
	}
	err := w.CommitBatch(ctx, "load-l", "export", man.Chunks)
	var lost *warehouse.StagingLostError
	if !errors.As(err, &lost) || lost.Load != "load-l" || lost.Chunk != 1 || !errors.Is(err, warehouse.ErrStagingLost) {
		t.Fatalf("commit with chunk 1's table gone: %v, want a StagingLostError for chunk 1 of load-l", err)
	}
	stage(t, w, dir, "load-l", man.Chunks[1])
	if err := w.CommitBatch(ctx, "load-l", "export", man.Chunks); err != nil {
		t.Fatal(err)
	}
	for _, c := range man.Chunks {
		if err := w.DropStaging(ctx, "load-l", c.Index); err != nil {
			t.Fatal(err)
		}
	}
	// A retry after the drop: every chunk is in the ledger.
	if err := w.CommitBatch(ctx, "load-l", "export", man.Chunks); err != nil {
		t.Fatalf("commit after the staging tables were dropped: %v", err)
	}
	if ids := factIDs(t, w); len(ids) != 2 {
		t.Fatalf("fact ids %v, want 80 and 81", ids)
	}
}

// TestOnlyQuarantineDoubled: a batch with rows whose race doubled only a
// quarantine record removes that record and leaves the fact table alone.
func TestOnlyQuarantineDoubled(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_qdup_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	x, b := uuid(90), uuid(91)
	bad := strings.Replace(event(b, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1)
	load(t, w, "load-q1", 10, event(x, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), bad)
	// load-a's commit lands beside load-q2's (see
	// TestOverlappingLoadsConvergeToOneRowPerID) with b only.
	w.SetCommitHook(func() error {
		w.SetCommitHook(nil)
		copyRowAs(t, ds, schemas.TableQuarantine, bqschema.QuarantineTableSchema(), "event_id", b, "load-a")
		addLedgerRow(t, ds, "load-a")
		return nil
	})
	load(t, w, "load-q2", 10, event(x, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), bad)
	q, err := w.QuarantinedIDs(context.Background())
	if err != nil || len(q[b]) != 1 {
		t.Fatalf("quarantine %v (%v), want %s once", q, err, b)
	}
	if ids := factIDs(t, w); len(ids) != 1 || ids[x] != 1 {
		t.Fatalf("fact ids %v, want %s once", ids, x)
	}
}

// TestDimensionsFollowChanges: dim_gateway keeps a gateway the API no
// longer lists (its events stay, and the guide's queries join it) and
// each id once; rows that come back after a change are loaded again;
// and past dim_user's bound the other dimensions are still refreshed.
func TestDimensionsFollowChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_dimchg_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	gateways := func() string {
		t.Helper()
		return fmt.Sprint(queryRows(t, fmt.Sprintf("SELECT gateway_id, team, environment FROM `%s.%s.%s` ORDER BY gateway_id", project, ds, schemas.TableDimGateway)))
	}
	refresh := func(gws ...warehouse.Gateway) {
		t.Helper()
		if err := w.RefreshDimensions(ctx, gws, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	a := warehouse.Gateway{ID: "gw-a", Name: "a", Team: "ml", Environment: "prod"}
	b := warehouse.Gateway{ID: "gw-b", Name: "b", Team: "web", Environment: "prod"}
	refresh(a, b, warehouse.Gateway{ID: "gw-b", Name: "b2", Team: "other"})
	// An empty dimension dropped by hand is created again.
	if err := bq.Dataset(ds).Table(schemas.TableDimModel).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	refresh(a, b)
	if _, err := bq.Dataset(ds).Table(schemas.TableDimModel).Metadata(ctx); err != nil {
		t.Fatalf("dim_model after it was dropped empty and refreshed: %v", err)
	}
	if got, want := gateways(), "[[gw-a ml prod] [gw-b web prod]]"; got != want {
		t.Fatalf("dim_gateway %s, want %s (each id once, as first listed)", got, want)
	}
	renamed := a
	renamed.Team = "research"
	refresh(renamed)
	if got, want := gateways(), "[[gw-a research prod] [gw-b web prod]]"; got != want {
		t.Fatalf("dim_gateway after gw-b left the list %s, want %s", got, want)
	}
	refresh(a, b) // the first refresh's rows again
	if got, want := gateways(), "[[gw-a ml prod] [gw-b web prod]]"; got != want {
		t.Fatalf("dim_gateway after the team was renamed back %s, want %s", got, want)
	}
	// The same list again neither reads dim_gateway nor loads it.
	seen := record(w)
	refresh(a, b)
	w.SetStatementObserver(nil)
	for _, s := range seen() {
		if strings.Contains(s.What, "gateway") || s.Load == schemas.TableDimGateway {
			t.Errorf("a refresh with an unchanged gateway list ran %q", s.What)
		}
	}
	// A table holding other rows than its labels say (two refreshes at
	// once, the labels of one beside the rows of the other) is loaded
	// again: its row count is not the labels'.
	exec(t, fmt.Sprintf("DELETE FROM `%s.%s.%s` WHERE gateway_id = 'gw-b'", project, ds, schemas.TableDimGateway))
	refresh(a, b)
	if got, want := gateways(), "[[gw-a ml prod] [gw-b web prod]]"; got != want {
		t.Fatalf("dim_gateway after it lost a row behind its labels %s, want %s", got, want)
	}

	load(t, w, "load-u", 10,
		event(uuid(80), "2026-11-04T10:00:00Z", "ada", "gpt-4o", "allow", "0.10"),
		event(uuid(81), "2026-11-04T11:00:00Z", "bo", "gpt-4o", "allow", "0.10"),
		event(uuid(82), "2026-11-05T11:00:00Z", "cy", "gpt-4o", "allow", "0.10"))
	w.SetMaxDimUsers(2)
	if err := w.RefreshDimensions(ctx, []warehouse.Gateway{a}, nil, nil); !errors.Is(err, warehouse.ErrTooManyUsers) {
		t.Fatalf("refresh of 3 users under a bound of 2: %v, want ErrTooManyUsers", err)
	}
	dates := fmt.Sprint(queryRows(t, fmt.Sprintf("SELECT date FROM `%s.%s.%s` ORDER BY date", project, ds, schemas.TableDimDate)))
	if dates != "[[2026-11-04] [2026-11-05]]" {
		t.Errorf("dim_date after a refresh failed on dim_user: %s, want both dates", dates)
	}
	// A dimension dropped by hand is created again by the next refresh.
	w.SetMaxDimUsers(0)
	if err := bq.Dataset(ds).Table(schemas.TableDimDate).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	refresh(a)
	if got := fmt.Sprint(queryRows(t, fmt.Sprintf("SELECT date FROM `%s.%s.%s` ORDER BY date", project, ds, schemas.TableDimDate))); got != dates {
		t.Errorf("dim_date after it was dropped and refreshed: %s, want %s", got, dates)
	}
}
