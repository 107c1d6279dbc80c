package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
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

// MergeProgress is the heartbeat of a merge: chunks committed so far,
// and how many chunks its transactions take.
type MergeProgress struct {
	Done  int
	Batch int // 0: recorded before the bound was recorded, under legacyBatchChunks
}

// legacyBatchChunks is the bound a heartbeat without Batch was recorded
// under (warehouse.MaxBatchChunks was 200 then).
const legacyBatchChunks = 200

// resumePlan is where a merge resumes, and in transactions of how many
// chunks. A retry resumes at the start of the transaction the last
// attempt was in, with that attempt's bound: its transaction may still be
// running in BigQuery (its worker died, the job did not), and only the
// same set of chunks gets the same job id, which makes the retry wait for
// that job instead of committing its chunks beside it. Under another
// bound (an upgrade that changed MaxBatchChunks) the sets would differ,
// both transactions would append the same rows under the same load id,
// and convergence, which keeps one row per load id, could not tell them
// apart. A bound above today's (a downgrade) cannot be taken again, since
// CommitLoads refuses it: today's is used from the same start.
func resumePlan(p MergeProgress, resumed bool, total int) (start, batch int) {
	if !resumed {
		return 0, warehouse.MaxBatchChunks
	}
	last := p.Batch
	if last <= 0 {
		last = legacyBatchChunks
	}
	start = p.Done
	if start < total {
		// A merge that committed everything goes straight to dropping
		// the staging tables: a kill there can leave a half-dropped
		// table the emulator lists but cannot count.
		start -= start % last
	}
	return start, min(last, warehouse.MaxBatchChunks)
}

// MergeLoad commits one load's staged chunks: MergeLoads of one.
func (a *Activities) MergeLoad(ctx context.Context, in payload.MergeInput) error {
	return a.MergeLoads(ctx, payload.MergeLoadsInput{Loads: []payload.MergeInput{in}})
}

// MergeLoads commits the staged chunks of loads into raw, fact and
// quarantine, in the order given (each load's in its chunk order), in
// transactions of up to warehouse.MaxBatchChunks chunks: loads are packed
// together, and a load larger than the bound spans several transactions.
// Then it drops the staging tables. Each commit is guarded (anti-join
// inserts, the ledger), so a transaction committed twice adds nothing;
// resuming after the last heartbeat (MergeProgress: chunks committed,
// counted over the loads in order) only saves the work.
func (a *Activities) MergeLoads(ctx context.Context, in payload.MergeLoadsInput) error {
	total, err := checkMergeLoads(in)
	if err != nil {
		return err
	}
	var p MergeProgress
	resumed := activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &p) == nil
	start, batch := resumePlan(p, resumed, total)
	var done atomic.Int64
	done.Store(int64(start))
	defer keepAlive(ctx, func() any { return MergeProgress{Done: int(done.Load()), Batch: batch} })()
	for i := start; i < total; i += batch {
		end := min(i+batch, total)
		if err := a.commitLoads(ctx, packLoads(in.Loads, i, end)); err != nil {
			return err
		}
		done.Store(int64(end))
		activity.RecordHeartbeat(ctx, MergeProgress{Done: end, Batch: batch})
	}
	// Every chunk is committed: dropping its staging tables is tidying
	// (they expire by themselves), so it is bounded and cannot fail or
	// hold the merge. The BigQuery client retries a 500 until its context
	// ends; an emulator table half dropped by a killed attempt answers
	// 500 to every delete, which held a merge, and the one merge slot,
	// for as long as the activity could run.
	for _, l := range in.Loads {
		for _, c := range l.Chunks {
			dctx, cancel := context.WithTimeout(ctx, dropStagingTimeout)
			err := a.Warehouse.DropStaging(dctx, l.LoadID, c.Index)
			cancel()
			if err != nil {
				activity.GetLogger(ctx).Warn("staging tables left to expire", "load", l.LoadID, "chunk", c.Index, "error", err)
			}
		}
	}
	return nil
}

// checkMergeLoads refuses loads that cannot be committed as given (a load
// without an id, a load or chunk named twice), and counts their chunks.
func checkMergeLoads(in payload.MergeLoadsInput) (total int, err error) {
	seen := map[string]bool{}
	for i, l := range in.Loads {
		if l.LoadID == "" || seen[l.LoadID] {
			return 0, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("merge loads: MergeLoadsInput.Loads[%d].LoadID %q: must be set and name one load once", i, l.LoadID), payload.ErrTypeBadInput, nil)
		}
		seen[l.LoadID] = true
		chunks := map[int]bool{}
		for _, c := range l.Chunks {
			if chunks[c.Index] {
				return 0, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("merge loads: MergeLoadsInput.Loads[%d].Chunks: chunk %d of %s twice", i, c.Index, l.LoadID), payload.ErrTypeBadInput, nil)
			}
			chunks[c.Index] = true
		}
		total += len(l.Chunks)
	}
	return total, nil
}

// packLoads is the transaction of chunks [from, to) of the loads' chunks
// taken in order: each load's chunks in that range, loads in order.
func packLoads(loads []payload.MergeInput, from, to int) []warehouse.LoadChunks {
	var batch []warehouse.LoadChunks
	off := 0
	for _, l := range loads {
		lo, hi := max(from-off, 0), min(to-off, len(l.Chunks))
		if lo < hi {
			batch = append(batch, warehouse.LoadChunks{LoadID: l.LoadID, Source: l.Source, Chunks: l.Chunks[lo:hi]})
		}
		off += len(l.Chunks)
	}
	return batch
}

// commitLoads commits one transaction. A stage whose worker died can
// leave a short or missing staging table: that chunk is staged again from
// its file and the transaction committed again. A chunk lost a second
// time fails the attempt, so the loop ends after at most one restage per
// chunk.
func (a *Activities) commitLoads(ctx context.Context, batch []warehouse.LoadChunks) error {
	restaged := map[string]bool{}
	for {
		start := time.Now()
		err := a.Warehouse.CommitLoads(ctx, batch)
		a.Metrics.ObserveCommit(time.Since(start))
		var lost *warehouse.StagingLostError
		key := ""
		if errors.As(err, &lost) {
			key = fmt.Sprintf("%s/%d", lost.Load, lost.Chunk)
		}
		if key == "" || restaged[key] {
			return classifyWarehouse(ctx, "merge", err)
		}
		restaged[key] = true
		activity.GetLogger(ctx).Warn("re-staging chunk before commit", "load", lost.Load, "chunk", lost.Chunk, "reason", err)
		for _, l := range batch {
			for _, c := range l.Chunks {
				if l.LoadID == lost.Load && c.Index == lost.Chunk {
					err := a.StageChunk(ctx, payload.ChunkInput{LoadID: l.LoadID, Chunk: c})
					if errors.Is(err, staging.ErrNotFound) {
						// Its table and its file are gone: no retry brings them
						// back, the load is to be replayed from the source.
						return temporal.NewNonRetryableApplicationError(fmt.Sprintf("chunk %d of %s: staging table and file lost; replay the load's window from the source", c.Index, l.LoadID),
							payload.ErrTypeNothingStaged, err)
					}
					if err != nil {
						return err // classified by StageChunk
					}
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

// CheckLoads counts what each load left in the warehouse, in two queries
// however many loads (three for loads committed before the ledger had
// dates; up to warehouse.MaxCheckLoads).
func (a *Activities) CheckLoads(ctx context.Context, loadIDs []string) (map[string]payload.Completeness, error) {
	if len(loadIDs) > warehouse.MaxCheckLoads {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("check loads: %d load ids, at most warehouse.MaxCheckLoads (%d) a call", len(loadIDs), warehouse.MaxCheckLoads), payload.ErrTypeBadInput, nil)
	}
	defer keepAlive(ctx, nil)()
	c, err := a.Warehouse.CheckLoads(ctx, loadIDs)
	return c, classifyWarehouse(ctx, fmt.Sprintf("check %d loads", len(loadIDs)), err)
}

// LandLiveChunks streams staged chunks' rows into live_events (the pull
// path, for the live view while its load waits for the compaction), as
// a webhook batch streams its deliveries: insertAll, at most
// warehouse.MaxLiveRows rows and MaxLiveBytes a request. Not load jobs:
// BigQuery takes 1,500 a table a day, and a pull at 100M events a day
// has 2,016 chunks. At least once: a retry streams a chunk again, and
// the live view keeps one row per event id.
func (a *Activities) LandLiveChunks(ctx context.Context, in payload.ChunksInput) (rows int64, err error) {
	defer keepAlive(ctx, nil)()
	defer func() { a.Metrics.LiveLanded(rows, err != nil) }()
	insert := a.liveInsert()
	for _, c := range in.Chunks {
		if c.Rows == 0 {
			continue
		}
		if err := a.landLiveChunk(ctx, c, &liveWriter{ctx: ctx, insert: insert, streamed: &rows}); err != nil {
			return rows, classify(fmt.Sprintf("land chunk %d of %s live", c.Index, in.LoadID), err)
		}
	}
	return rows, nil
}

func (a *Activities) landLiveChunk(ctx context.Context, c payload.Chunk, w *liveWriter) error {
	f, err := a.Store.Open(ctx, c.Key)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	return w.Close()
}

// CleanupLoad removes a finished load's staged files.
func (a *Activities) CleanupLoad(ctx context.Context, loadID string) error {
	defer keepAlive(ctx, nil)()
	return a.removeLoadFiles(ctx, loadID)
}

func (a *Activities) removeLoadFiles(ctx context.Context, loadID string) error {
	for _, prefix := range []string{"loads/" + loadID, "exports/" + loadID} {
		if err := a.Store.RemoveAll(ctx, prefix); err != nil {
			return classify("cleanup", err)
		}
	}
	return nil
}
