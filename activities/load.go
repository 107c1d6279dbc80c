package activities

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/warehouse"
)

// StageChunk loads a chunk into its staging tables (WRITE_TRUNCATE with
// a job id from load, chunk and content: a retry replaces, never adds).
func (a *Activities) StageChunk(ctx context.Context, in payload.ChunkInput) error {
	defer keepAlive(ctx, nil)()
	rows, err := a.Store.Open(ctx, in.Chunk.Key)
	if err != nil {
		return classify("stage chunk", err)
	}
	defer rows.Close()
	files := warehouse.ChunkFiles{Rows: rows}
	if in.Chunk.QuarantineKey != "" {
		q, err := a.Store.Open(ctx, in.Chunk.QuarantineKey)
		if err != nil {
			return classify("stage chunk", err)
		}
		defer q.Close()
		files.Quarantine = q
	}
	start := time.Now()
	err = a.Warehouse.StageChunk(ctx, in.LoadID, in.Chunk, files)
	a.Metrics.ObserveStage(time.Since(start))
	return classifyWarehouse(ctx, fmt.Sprintf("stage chunk %d of %s", in.Chunk.Index, in.LoadID), err)
}

// MergeProgress is the heartbeat of a merge: chunks committed so far.
type MergeProgress struct {
	Done int
}

// MergeLoad commits the staged chunks into raw, fact and quarantine, in
// chunk order and in batches of up to warehouse.MaxBatchChunks, one
// transaction each, then drops the staging tables. Each commit is guarded
// (anti-join inserts, the ledger), so a batch committed twice adds
// nothing; resuming after the last heartbeat only saves the work.
func (a *Activities) MergeLoad(ctx context.Context, in payload.MergeInput) error {
	start := 0
	var p MergeProgress
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &p) == nil {
		// Batches start at multiples of MaxBatchChunks, whatever the
		// heartbeat says (a per-chunk merge before batches recorded any
		// count): committing a chunk again adds nothing. A merge that
		// committed everything goes straight to dropping the staging
		// tables: a kill there can leave a half-dropped table the
		// emulator lists but cannot count.
		start = p.Done
		if start < len(in.Chunks) {
			start -= start % warehouse.MaxBatchChunks
		}
	}
	var done atomic.Int64
	done.Store(int64(start))
	defer keepAlive(ctx, func() any { return MergeProgress{Done: int(done.Load())} })()
	for i := start; i < len(in.Chunks); i += warehouse.MaxBatchChunks {
		batch := in.Chunks[i:min(i+warehouse.MaxBatchChunks, len(in.Chunks))]
		if err := a.commitBatch(ctx, in, batch); err != nil {
			return err
		}
		done.Store(int64(i + len(batch)))
		activity.RecordHeartbeat(ctx, MergeProgress{Done: i + len(batch)})
	}
	// Every chunk is committed: dropping its staging tables is tidying
	// (they expire by themselves), so it is bounded and cannot fail or
	// hold the merge. The BigQuery client retries a 500 until its context
	// ends; an emulator table half dropped by a killed attempt answers
	// 500 to every delete, which held a merge, and the one merge slot,
	// for as long as the activity could run.
	for _, c := range in.Chunks {
		dctx, cancel := context.WithTimeout(ctx, dropStagingTimeout)
		err := a.Warehouse.DropStaging(dctx, in.LoadID, c.Index)
		cancel()
		if err != nil {
			activity.GetLogger(ctx).Warn("staging tables left to expire", "load", in.LoadID, "chunk", c.Index, "error", err)
		}
	}
	return nil
}

// commitBatch commits one batch. A stage whose worker died can leave a
// short or missing staging table: that chunk is staged again from its
// file and the batch committed again. A chunk lost a second time fails
// the attempt, so the loop ends after at most one restage per chunk.
func (a *Activities) commitBatch(ctx context.Context, in payload.MergeInput, batch []payload.Chunk) error {
	restaged := map[int]bool{}
	for {
		start := time.Now()
		err := a.Warehouse.CommitBatch(ctx, in.LoadID, in.Source, batch)
		a.Metrics.ObserveCommit(time.Since(start))
		var lost *warehouse.StagingLostError
		if !errors.As(err, &lost) || restaged[lost.Chunk] {
			return classifyWarehouse(ctx, "merge", err)
		}
		restaged[lost.Chunk] = true
		activity.GetLogger(ctx).Warn("re-staging chunk before commit", "load", in.LoadID, "chunk", lost.Chunk, "reason", err)
		for _, c := range batch {
			if c.Index == lost.Chunk {
				if err := a.StageChunk(ctx, payload.ChunkInput{LoadID: in.LoadID, Chunk: c}); err != nil {
					return err // classified by StageChunk
				}
			}
		}
	}
}

// dropStagingTimeout bounds dropping one committed chunk's two staging
// tables.
const dropStagingTimeout = 30 * time.Second

// CheckLoad counts what a load left in the warehouse.
func (a *Activities) CheckLoad(ctx context.Context, loadID string) (payload.Completeness, error) {
	defer keepAlive(ctx, nil)()
	c, err := a.Warehouse.CheckLoad(ctx, loadID)
	return c, classifyWarehouse(ctx, "check load "+loadID, err)
}

// CleanupLoad removes a finished load's staged files.
func (a *Activities) CleanupLoad(ctx context.Context, loadID string) error {
	defer keepAlive(ctx, nil)()
	for _, prefix := range []string{"loads/" + loadID, "exports/" + loadID} {
		if err := a.Store.RemoveAll(ctx, prefix); err != nil {
			return classify("cleanup", err)
		}
	}
	return nil
}
