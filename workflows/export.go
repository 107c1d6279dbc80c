package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/metrics/wfmetrics"
	"github.com/ktpipe/ktpipe/payload"
)

// ExportLoadInput is one export window to load.
type ExportLoadInput struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Format string    `json:"format,omitempty"` // json, ndjson or csv (default ndjson)
	Gzip   bool      `json:"gzip,omitempty"`
	Source string    `json:"source,omitempty"` // raw.source: export, backfill or replay (default export)
	Tuning Tuning    `json:"tuning,omitzero"`
}

// ExportLoadResult says what the load did.
type ExportLoadResult struct {
	LoadID        string   `json:"loadId"`
	ExportID      string   `json:"exportId"`
	RowCount      int64    `json:"rowCount"` // records in the export file, by the API
	Records       int64    `json:"records"`  // records read
	Rows          int64    `json:"rows"`     // valid rows loaded
	Quarantined   int64    `json:"quarantined"`
	Resent        int64    `json:"resent"` // records the source repeated within a chunk
	Chunks        int      `json:"chunks"`
	UnknownFields []string `json:"unknownFields,omitempty"`
}

// ExportProgress is what the progress query returns.
type ExportProgress struct {
	Phase        string `json:"phase"`  // creating, waiting, downloading, splitting, loading, refreshing dimensions, checking, done
	LoadID       string `json:"loadId"` // for a replay from staging if the load fails
	ExportID     string `json:"exportId"`
	ExportStatus string `json:"exportStatus"`
	Polls        int    `json:"polls"`
	Generation   int    `json:"generation"` // exports created after failed or expired ones
	ChunksTotal  int    `json:"chunksTotal"`
	ChunksStaged int    `json:"chunksStaged"`
	Rows         int64  `json:"rows"`
	Quarantined  int64  `json:"quarantined"`
}

// maxGenerations bounds how often a failed, expired or stuck export is
// replaced by a new one before the workflow gives up.
const maxGenerations = 3

// exportWaitBound bounds the wait for one export to end (completed,
// failed or expired), from its creation; past it the export counts as
// stuck and is replaced like a failed one. The contract promises no end,
// and a simulated export ends within a second. Six hours, times
// maxGenerations, keeps a stuck window's run under a day (the history
// schedule's period; its overlap policy buffers the next days behind it)
// and its history near 12,000 events at the 1 min poll cap, a quarter of
// the count at which Temporal terminates a workflow.
const exportWaitBound = 6 * time.Hour

// exportWaitBoundChange versions the bound: a run whose history already
// polled past it without the marker keeps polling, as it ran; a running
// export that reaches it after the deploy gets the bound.
const exportWaitBoundChange = "export-wait-bound"

// ExportLoad loads one window through the Export API: create the export
// (idempotency key from the workflow id, run id and export generation)
// → poll its status with durable timers → download → split into chunks →
// the load tail every load shares (landLoad: stage and merge the chunks,
// refresh dimensions, check completeness).
func ExportLoad(ctx workflow.Context, in ExportLoadInput) (ExportLoadResult, error) {
	s := &exportLoad{in: in, t: in.Tuning.withDefaults()}
	if err := s.setup(ctx); err != nil {
		return ExportLoadResult{}, err
	}
	res, err := s.run(ctx)
	if err != nil {
		return res, s.failed(ctx, err)
	}
	return res, nil
}

type exportLoad struct {
	in       ExportLoadInput
	t        Tuning
	progress ExportProgress
}

func (s *exportLoad) setup(ctx workflow.Context) error {
	if s.in.Format == "" {
		s.in.Format = "ndjson"
	}
	if s.in.Source == "" {
		s.in.Source = "export"
	}
	if err := checkInput(ctx, s.in.Check); err != nil {
		return err
	}
	s.phase(ctx, "starting")
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (ExportProgress, error) { return s.progress, nil }); err != nil {
		return err
	}
	return workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet(s.in.Source),
		WindowStartKey.ValueSet(s.in.Since), WindowEndKey.ValueSet(s.in.Until))
}

func (s *exportLoad) run(ctx workflow.Context) (ExportLoadResult, error) {
	info := workflow.GetInfo(ctx)
	var exp payload.Export
	var dl payload.DownloadResult
	for {
		var err error
		if exp, err = s.createAndWait(ctx, info.WorkflowExecution.ID); err != nil {
			return ExportLoadResult{}, err
		}
		s.phase(ctx, "downloading")
		err = workflow.ExecuteActivity(longCtx(ctx, s.t, APIQueueSuffix), payload.DownloadExport,
			payload.DownloadInput{LoadID: s.loadID(ctx), Export: exp}).Get(ctx, &dl)
		// Expired before we got it, or its file fails its checksum
		// (downloaded twice): export again.
		if (HasErrorType(err, payload.ErrTypeExpired) || HasErrorType(err, payload.ErrTypeChecksum)) &&
			s.progress.Generation+1 < maxGenerations {
			s.progress.Generation++
			continue
		}
		if err != nil {
			return ExportLoadResult{}, fmt.Errorf("download export %s: %w", exp.ID, err)
		}
		break
	}
	id := s.loadID(ctx)

	gateways, ids, err := fetchGateways(ctx)
	if err != nil {
		return ExportLoadResult{}, err
	}
	s.phase(ctx, "splitting")
	var records int64 // unknown: the split's chunks are KTPIPE_CHUNK_ROWS
	if exp.RowCount != nil {
		records = *exp.RowCount
	}
	var man payload.Manifest
	err = workflow.ExecuteActivity(longCtx(ctx, s.t, ""), payload.SplitExport, payload.SplitInput{
		LoadID: id, Source: s.in.Source, Key: dl.Key, Format: exp.Format, Gzip: exp.Compression == "gzip", Gateways: ids,
		Records: records,
	}).Get(ctx, &man)
	if err != nil {
		return ExportLoadResult{}, fmt.Errorf("split export %s: %w", exp.ID, err)
	}
	if exp.RowCount != nil && man.Records != *exp.RowCount {
		return ExportLoadResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("export %s: read %d records, the export says %d", exp.ID, man.Records, *exp.RowCount), payload.ErrTypeIncomplete, nil)
	}
	s.progress.ChunksTotal, s.progress.Rows, s.progress.Quarantined = len(man.Chunks), man.Rows, man.Quarantined
	reportUnknownFields(ctx, man)

	if err := landLoad(ctx, s.t, s.in.Source, man, loadTail{Refresh: true, Gateways: gateways,
		Phase: func(p string) { s.phase(ctx, p) }, OnStaged: func() { s.progress.ChunksStaged++; s.phase(ctx, "loading") }}); err != nil {
		return ExportLoadResult{}, err
	}
	cleanupLoad(ctx, s.t, id)
	s.phase(ctx, "done")
	res := ExportLoadResult{LoadID: id, ExportID: exp.ID, Records: man.Records, Rows: man.Rows,
		Quarantined: man.Quarantined, Resent: man.Resent, Chunks: len(man.Chunks), UnknownFields: man.UnknownFields}
	if exp.RowCount != nil {
		res.RowCount = *exp.RowCount
	}
	return res, nil
}

// runKey identifies this run's export generation. It is stable across
// activity retries and workflow replays of the run, and new for another
// run of the same workflow id (a backfill window started again after a
// failure must not get the failed export back from the idempotency key).
func (s *exportLoad) runKey(ctx workflow.Context) string {
	info := workflow.GetInfo(ctx)
	return fmt.Sprintf("%s/%s/g%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, s.progress.Generation)
}

// loadID names this generation's load in staging and the warehouse.
func (s *exportLoad) loadID(ctx workflow.Context) string {
	info := workflow.GetInfo(ctx)
	id := loadID(info.WorkflowExecution.ID, info.WorkflowExecution.RunID[:8], fmt.Sprintf("g%d", s.progress.Generation))
	s.progress.LoadID = id
	return id
}

// createAndWait creates the export and polls it with durable timers until
// it completes; a failed, expired or stuck (exportWaitBound) export is
// replaced by a new one with a new idempotency key, at most
// maxGenerations exports in all.
func (s *exportLoad) createAndWait(ctx workflow.Context, workflowID string) (payload.Export, error) {
	var reason string // why the last export did not complete
	for ; s.progress.Generation < maxGenerations; s.progress.Generation++ {
		s.phase(ctx, "creating")
		var exp payload.Export
		key := "ktpipe/" + s.runKey(ctx)
		err := workflow.ExecuteActivity(apiCtx(ctx), payload.CreateExport, payload.CreateExportInput{
			IdempotencyKey: key, Since: s.in.Since, Until: s.in.Until, Format: s.in.Format, Gzip: s.in.Gzip,
			Description: "ktpipe " + workflowID,
		}).Get(ctx, &exp)
		if err != nil {
			return exp, fmt.Errorf("create export: %w", err)
		}
		s.progress.ExportID = exp.ID
		// The load id goes with the export id (one upsert, as before it
		// was added, so recorded histories replay): a failed load's id is
		// a column in the UI's list.
		if err := workflow.UpsertTypedSearchAttributes(ctx, ExportIDKey.ValueSet(exp.ID), LoadIDKey.ValueSet(s.loadID(ctx))); err != nil {
			return exp, err
		}
		s.phase(ctx, "waiting")
		created := workflow.Now(ctx)
		stuck := false
		delay := s.t.PollInterval
		for !exp.Terminal() {
			// GetVersion only once the bound is reached, so the histories
			// of exports that end in time carry no marker.
			if workflow.Now(ctx).Sub(created) >= exportWaitBound &&
				workflow.GetVersion(ctx, exportWaitBoundChange, workflow.DefaultVersion, 1) == 1 {
				stuck = true
				break
			}
			if err := workflow.Sleep(ctx, delay); err != nil {
				return exp, err
			}
			delay = min(delay*2, s.t.MaxPollInterval)
			s.progress.Polls++
			if err := workflow.ExecuteActivity(apiCtx(ctx), payload.GetExport, exp.ID).Get(ctx, &exp); err != nil {
				return exp, fmt.Errorf("poll export %s: %w", exp.ID, err)
			}
			s.progress.ExportStatus = exp.Status
		}
		s.progress.ExportStatus = exp.Status
		status := exp.Status
		switch {
		case stuck:
			status = "stuck"
		case status == payload.StatusCompleted:
			status = "ready"
		}
		wfmetrics.CountExport(workflow.GetMetricsHandler(ctx), status)
		if exp.Status == payload.StatusCompleted {
			return exp, nil
		}
		reason = exp.Status
		if stuck {
			reason += fmt.Sprintf(", not completed, failed or expired %s after its creation (the bound)", exportWaitBound)
		}
		if exp.Error != nil {
			reason += ": " + *exp.Error
		}
		reason = "export " + exp.ID + " " + reason
		workflow.GetLogger(ctx).Warn("export did not complete; creating a new one", "export", exp.ID, "reason", reason)
	}
	return payload.Export{}, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("export of [%s, %s) failed %d times; the last: %s", s.in.Since, s.in.Until, maxGenerations, reason), payload.ErrTypeAPI, nil)
}

// phase moves the load to its next phase and shows it in the UI.
func (s *exportLoad) phase(ctx workflow.Context, p string) {
	s.progress.Phase = p
	pr := s.progress
	lines := []string{"phase: " + p}
	if pr.ExportID != "" {
		lines = append(lines, fmt.Sprintf("export `%s` %s (generation %d, %d polls)", pr.ExportID, pr.ExportStatus, pr.Generation, pr.Polls))
	}
	if pr.ChunksTotal > 0 {
		lines = append(lines, fmt.Sprintf("%d/%d chunks staged: %d rows, %d quarantined", pr.ChunksStaged, pr.ChunksTotal, pr.Rows, pr.Quarantined))
	}
	if pr.LoadID != "" {
		lines = append(lines, "load id: `"+pr.LoadID+"`")
	}
	details(ctx, ExportSummary(s.in), lines...)
}

// failed names the load and how to retry it, in the error (the UI's
// failure pane) and the current details. Once the export is split, its
// chunks are staged and a Replay of the load id loads them; before, only
// the window can be loaded again from the source.
func (s *exportLoad) failed(ctx workflow.Context, err error) error {
	retry := "Replay " + replayWindowJSON(s.in.Since, s.in.Until)
	if s.progress.LoadID != "" && s.progress.ChunksTotal > 0 {
		retry = "Replay " + ReplayJSON(s.progress.LoadID)
	}
	details(ctx, ExportSummary(s.in), "**failed** in phase "+s.progress.Phase+": "+err.Error(),
		"load id: `"+s.progress.LoadID+"`", "retry: start workflow `"+retry+"`")
	if s.progress.LoadID == "" {
		return fmt.Errorf("%s failed in phase %s (retry: %s): %w", ExportSummary(s.in), s.progress.Phase, retry, err)
	}
	return fmt.Errorf("load %s failed in phase %s (retry: %s): %w", s.progress.LoadID, s.progress.Phase, retry, err)
}
