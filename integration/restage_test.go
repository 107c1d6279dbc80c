package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
)

// TestMergeRestagesALostStagingTable: a chunk's staging tables gone
// before the merge (expired, or a stage whose worker died short) are
// staged again from the chunk's file, and the load lands exactly once.
// With the file gone too, the merge stops at once with a non-retryable
// error that says to replay, and commits nothing of the load.
func TestMergeRestagesALostStagingTable(t *testing.T) {
	s := newStack(t, simConfig(), false)
	ctx := context.Background()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(s.acts)
	since, until := s.historyWindow()

	// stage splits and stages a load of the window, and drops the staging
	// tables of its second chunk: one with a committed chunk on each side,
	// so a restage that lost its place in the batch shows.
	stage := func(loadID string) payload.Manifest {
		t.Helper()
		man := stageWithoutMerging(t, s, loadID, since, until)
		if len(man.Chunks) < 3 {
			t.Fatalf("%s: %d chunks, want 3 or more", loadID, len(man.Chunks))
		}
		for _, c := range man.Chunks {
			if _, err := env.ExecuteActivity(s.acts.StageChunk, payload.ChunkInput{LoadID: loadID, Chunk: c}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.wh.DropStaging(ctx, loadID, man.Chunks[1].Index); err != nil {
			t.Fatal(err)
		}
		return man
	}
	merge := func(man payload.Manifest) error {
		_, err := env.ExecuteActivity(s.acts.MergeLoads, payload.MergeLoadsInput{Loads: []payload.MergeInput{
			{LoadID: man.LoadID, Source: "export", Chunks: man.Chunks}}})
		return err
	}

	man := stage("table-lost")
	if err := merge(man); err != nil {
		t.Fatalf("merge with chunk 1's staging tables gone: %v", err)
	}
	committed, err := s.wh.Committed(ctx, man.LoadID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range man.Chunks {
		if !committed[c.Index] {
			t.Errorf("chunk %d of %s not in the ledger", c.Index, man.LoadID)
		}
	}
	s.assertExactlyOnce(since, until)

	// The same window again, its lost chunk's file removed as well.
	man = stage("table-and-file-lost")
	if err := os.Remove(filepath.Join(s.staging, filepath.FromSlash(man.Chunks[1].Key))); err != nil {
		t.Fatal(err)
	}
	err = merge(man)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != payload.ErrTypeNothingStaged || !appErr.NonRetryable() {
		t.Fatalf("merge with chunk 1's table and file gone: %v, want a non-retryable %s", err, payload.ErrTypeNothingStaged)
	}
	if committed, err = s.wh.Committed(ctx, man.LoadID); err != nil || len(committed) != 0 {
		t.Fatalf("ledger after the failed merge: %v %v, want nothing of %s", committed, err, man.LoadID)
	}
	s.assertExactlyOnce(since, until)
}
