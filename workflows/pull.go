package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// DefaultCheckpointKey is the pipeline_state key of the hourly pull.
const DefaultCheckpointKey = "incremental_pull_cursor"

// IncrementalPullInput configures one scheduled pull.
type IncrementalPullInput struct {
	CheckpointKey string `json:"checkpointKey,omitempty"` // default DefaultCheckpointKey
	// Start is where the very first pull begins (RFC 3339 or 24h); later
	// pulls continue from the stored cursor.
	Start         string `json:"start,omitempty"`
	PageSize      int    `json:"pageSize,omitempty"`      // default 1000
	PagesPerBatch int    `json:"pagesPerBatch,omitempty"` // pages staged per batch (default 50)
	BatchesPerRun int    `json:"batchesPerRun,omitempty"` // batches before continue-as-new (default 20)
	// LateWindow is how long after its timestamp an event may still
	// arrive (default 6h). Only used when the server refuses the stored
	// cursor: the pull then restarts this long before the checkpoint.
	LateWindow time.Duration `json:"lateWindow,omitempty"`
	Tuning     Tuning        `json:"tuning,omitzero"`
	// Defer: stage each batch and leave its commit to the compaction
	// (Compact), landing its rows into live_events for the live view
	// meanwhile; the checkpoint moves once the batch is staged and marked.
	Defer bool `json:"defer,omitempty"`

	// Set by the workflow itself when it continues as new.
	Cursor string     `json:"cursor,omitempty"`
	Totals PullTotals `json:"totals,omitzero"`
}

// PullTotals accumulate across continue-as-new.
type PullTotals struct {
	Batches      int   `json:"batches"`
	Rows         int64 `json:"rows"`
	Quarantined  int64 `json:"quarantined"`
	CursorResets int   `json:"cursorResets"` // times the server refused the cursor and the pull restarted by time
}

// IncrementalPullResult says where the pull stopped.
type IncrementalPullResult struct {
	PullTotals
	Cursor string `json:"cursor"`
}

// PullProgress is what the progress query returns.
type PullProgress struct {
	PullTotals
	Phase  string `json:"phase"`
	Cursor string `json:"cursor"`
}

// IncrementalPull pages the Events API from the stored cursor (ingestion
// order, so late events are never skipped), loads and merges each batch,
// and only then advances the checkpoint: a crash anywhere re-pulls the
// batch, and the merge absorbs the repeat. A long backlog continues as
// new every BatchesPerRun batches, so history stays small.
func IncrementalPull(ctx workflow.Context, in IncrementalPullInput) (IncrementalPullResult, error) {
	s := &incrementalPull{in: in, t: in.Tuning.withDefaults()}
	if err := s.setup(ctx); err != nil {
		return IncrementalPullResult{}, err
	}
	return s.run(ctx)
}

type incrementalPull struct {
	in       IncrementalPullInput
	t        Tuning
	progress PullProgress
	loadID   string // the batch being loaded, for the UI
}

// phase moves the pull to its next phase and shows it in the UI.
func (s *incrementalPull) phase(ctx workflow.Context, p string) {
	s.progress.Phase = p
	pr := s.progress
	lines := []string{"phase: " + p, fmt.Sprintf("%d batches this run and before: %d rows, %d quarantined", pr.Batches, pr.Rows, pr.Quarantined)}
	if pr.Cursor != "" {
		lines = append(lines, "cursor: `"+pr.Cursor+"`")
	}
	if s.loadID != "" && p != "done" {
		lines = append(lines, "batch load id: `"+s.loadID+"` (if this batch fails after pulling, Replay `"+ReplayJSON(s.loadID)+"`; the next scheduled pull also pulls it again)")
	}
	details(ctx, "incremental pull from checkpoint "+s.in.CheckpointKey, lines...)
}

func (s *incrementalPull) setup(ctx workflow.Context) error {
	if s.in.CheckpointKey == "" {
		s.in.CheckpointKey = DefaultCheckpointKey
	}
	if s.in.Start == "" {
		s.in.Start = "24h"
	}
	if s.in.PageSize <= 0 {
		s.in.PageSize = 1000
	}
	if s.in.PagesPerBatch <= 0 {
		s.in.PagesPerBatch = 50
	}
	if s.in.BatchesPerRun <= 0 {
		s.in.BatchesPerRun = 20
	}
	if s.in.LateWindow <= 0 {
		s.in.LateWindow = DefaultLateWindow
	}
	s.progress.PullTotals = s.in.Totals
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (PullProgress, error) { return s.progress, nil }); err != nil {
		return err
	}
	return workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet("pull"))
}

func (s *incrementalPull) run(ctx workflow.Context) (IncrementalPullResult, error) {
	info := workflow.GetInfo(ctx)
	cursor := s.in.Cursor
	if cursor == "" {
		s.phase(ctx, "reading checkpoint")
		if err := workflow.ExecuteActivity(warehouseCtx(ctx, s.t), payload.ReadCheckpoint, s.in.CheckpointKey).Get(ctx, &cursor); err != nil {
			return IncrementalPullResult{}, fmt.Errorf("read checkpoint: %w", err)
		}
	}
	s.progress.Cursor = cursor
	gateways, ids, err := fetchGateways(ctx)
	if err != nil {
		return IncrementalPullResult{}, err
	}
	loaded, reset := false, false
	for batch := 0; batch < s.in.BatchesPerRun; batch++ {
		// Unique per run and batch: a re-pull after a crash is a new load
		// whose rows the merge dedups against what already landed.
		id := loadID(info.WorkflowExecution.ID, info.WorkflowExecution.RunID[:8], fmt.Sprint(batch))
		s.loadID = id
		s.phase(ctx, "pulling")
		var res payload.PullResult
		in := payload.PullInput{LoadID: id, Cursor: cursor, Pages: s.in.PagesPerBatch, PageSize: s.in.PageSize, Gateways: ids}
		if cursor == "" {
			in.Since = s.in.Start
		}
		err := workflow.ExecuteActivity(longCtx(ctx, s.t, APIQueueSuffix), payload.PullPages, in).Get(ctx, &res)
		if HasErrorType(err, payload.ErrTypeCursorRejected) && cursor != "" && !reset {
			reset, cursor = true, ""
			if err := s.restartByTime(ctx); err != nil {
				return IncrementalPullResult{}, err
			}
			batch--
			continue
		}
		if err != nil {
			return IncrementalPullResult{}, fmt.Errorf("pull after cursor: %w", err)
		}
		reportUnknownFields(ctx, res.Manifest)
		if len(res.Manifest.Chunks) > 0 {
			var err error
			if s.in.Defer {
				s.phase(ctx, "staging for the compaction")
				err = deferLoad(ctx, s.t, payload.SourcePull, res.Manifest, true)
			} else {
				err = landLoad(ctx, s.t, payload.SourcePull, res.Manifest, loadTail{Phase: func(p string) { s.phase(ctx, p) }})
				loaded = true
			}
			if err != nil {
				return IncrementalPullResult{}, err
			}
		}
		// The checkpoint moves only after the batch is merged, or staged
		// and marked pending: the compaction commits it then.
		s.phase(ctx, "checkpointing")
		if err := workflow.ExecuteActivity(warehouseCtx(ctx, s.t), payload.WriteCheckpoint,
			payload.CheckpointInput{Key: s.in.CheckpointKey, Value: res.NextCursor}).Get(ctx, nil); err != nil {
			return IncrementalPullResult{}, fmt.Errorf("write checkpoint: %w", err)
		}
		if !s.in.Defer || len(res.Manifest.Chunks) == 0 { // the compaction removes a pending load's files
			cleanupLoad(ctx, s.t, id)
		}
		cursor = res.NextCursor
		s.progress.Cursor = cursor
		s.progress.Batches++
		s.progress.Rows += res.Manifest.Rows
		s.progress.Quarantined += res.Manifest.Quarantined
		if !res.HasMore {
			break
		}
		if batch == s.in.BatchesPerRun-1 {
			if loaded {
				if err := s.refresh(ctx, gateways); err != nil {
					return IncrementalPullResult{}, err
				}
			}
			next := s.in
			next.Cursor, next.Totals = cursor, s.progress.PullTotals
			return IncrementalPullResult{}, workflow.NewContinueAsNewError(ctx, IncrementalPull, next)
		}
	}
	if loaded {
		if err := s.refresh(ctx, gateways); err != nil {
			return IncrementalPullResult{}, err
		}
	}
	s.phase(ctx, "done")
	return IncrementalPullResult{PullTotals: s.progress.PullTotals, Cursor: cursor}, nil
}

// DefaultLateWindow bounds how late an event is expected to arrive.
const DefaultLateWindow = 6 * time.Hour

// restartByTime recovers from a cursor the server no longer accepts (the
// schedule was paused past the cursor's 30 days). The checkpoint was
// written after everything ingested before it had merged, so pulling
// again from LateWindow before that time, in ingestion order, misses
// nothing that arrived within LateWindow of its timestamp; what it
// serves again, the merge absorbs. The next batch starts without a
// cursor, from the new Start.
func (s *incrementalPull) restartByTime(ctx workflow.Context) error {
	var at time.Time
	if err := workflow.ExecuteActivity(warehouseCtx(ctx, s.t), payload.CheckpointTime, s.in.CheckpointKey).Get(ctx, &at); err != nil {
		return fmt.Errorf("read checkpoint time: %w", err)
	}
	if !at.IsZero() {
		s.in.Start = at.Add(-s.in.LateWindow).UTC().Format(time.RFC3339)
	}
	workflow.GetLogger(ctx).Warn("the server refused the stored cursor; pulling again by time",
		"since", s.in.Start, "checkpoint_written", at)
	s.progress.CursorResets++
	s.progress.Cursor = ""
	return nil
}

func (s *incrementalPull) refresh(ctx workflow.Context, gateways []payload.Gateway) error {
	s.phase(ctx, "refreshing dimensions")
	return refreshDimensions(ctx, s.t, gateways)
}
