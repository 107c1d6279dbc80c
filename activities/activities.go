// Package activities glues the source client, the staging store and the
// warehouse to Temporal. Each activity is idempotent by construction —
// its effect is keyed by the load id and chunk number the workflow passes
// — so Temporal may retry it, or a new worker may redo it, at any point.
package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// Error types that workflows branch on, and that retry policies name as
// non-retryable.
const (
	ErrTypeAPI         = "KeeptrustsAPIError"
	ErrTypeRateLimited = "RateLimited"
	ErrTypeExpired     = "ExportExpired"
	// ErrTypeCursorRejected: the server refuses a stored cursor (410
	// cursor_expired after 30 days, or 400 invalid_cursor); the pull
	// restarts from the checkpoint's time instead.
	ErrTypeCursorRejected = "CursorRejected"
	ErrTypeSchema         = "SchemaError"
	ErrTypeMalformed      = "MalformedSource"
	ErrTypeNothingStaged  = "NothingStaged"
	ErrTypeIncomplete     = "IncompleteLoad"
	// ErrTypeNoGateways: the API listed no gateways. Validating against
	// an empty list would quarantine every event as "unknown gateway"
	// while the cursor moves on, so the load fails instead.
	ErrTypeNoGateways = "NoGateways"
)

// Activities holds what the activities need; the worker builds it once.
type Activities struct {
	API       *keeptrusts.Client
	Warehouse *warehouse.Warehouse
	Store     staging.Store
	Prices    []warehouse.Price
	Users     map[string]warehouse.UserInfo
	ChunkRows int
	// Limits bound one record and a gzip stream's inflation (zero:
	// schemas.DefaultLimits).
	Limits schemas.Limits
}

func (a *Activities) limits() schemas.Limits {
	if a.Limits == (schemas.Limits{}) {
		return schemas.DefaultLimits
	}
	return a.Limits
}

// classify turns an error into what Temporal should do with it: wait for
// Retry-After, retry with backoff, or stop.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := op + ": " + err.Error()
	var ae *keeptrusts.APIError
	var se *warehouse.SchemaError
	var me *staging.MalformedError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
		return temporal.NewApplicationErrorWithOptions(msg, ErrTypeRateLimited, temporal.ApplicationErrorOptions{
			NextRetryDelay: max(ae.RetryAfter, time.Second), Cause: err})
	case errors.As(err, &ae) && ae.Code == "export_expired":
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeExpired, err)
	case errors.As(err, &ae) && (ae.Code == "cursor_expired" || ae.Code == "invalid_cursor"):
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeCursorRejected, err)
	case errors.As(err, &ae) && !ae.Retryable():
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeAPI, err)
	case errors.As(err, &se):
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeSchema, err)
	case errors.As(err, &me):
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeMalformed, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// CreateExportInput asks for one export window.
type CreateExportInput struct {
	IdempotencyKey string
	Since, Until   time.Time
	Format         string
	Gzip           bool
	Description    string
}

// CreateExport creates the export, idempotently: the key is derived from
// the workflow id, so a retried create returns the export already made.
func (a *Activities) CreateExport(ctx context.Context, in CreateExportInput) (keeptrusts.Export, error) {
	req := keeptrusts.ExportRequest{Type: "events", Format: in.Format, Compression: "none",
		Since: in.Since.UTC().Format(time.RFC3339Nano), Until: in.Until.UTC().Format(time.RFC3339Nano), Description: in.Description}
	if in.Gzip {
		req.Compression = "gzip"
	}
	exp, _, err := a.API.CreateExport(ctx, req, in.IdempotencyKey)
	return exp, classify("create export", err)
}

// GetExport reads an export's status; the workflow polls it with timers.
func (a *Activities) GetExport(ctx context.Context, id string) (keeptrusts.Export, error) {
	exp, err := a.API.GetExport(ctx, id)
	return exp, classify("get export "+id, err)
}

// FetchGateways lists the known gateways (validation and dim_gateway).
// An empty list is an error, not a validation input: every valid event
// would be quarantined as of an unknown gateway and reconcile would see
// no gap (fact + quarantine = count). It fails the load visibly and
// without retrying (an organisation without gateways, or a token of the
// wrong one, does not heal by itself; the next scheduled pull or a
// resumed backfill tries again).
func (a *Activities) FetchGateways(ctx context.Context) ([]warehouse.Gateway, error) {
	gws, err := a.API.Gateways(ctx)
	if err != nil {
		return nil, classify("list gateways", err)
	}
	if len(gws) == 0 {
		return nil, temporal.NewNonRetryableApplicationError(
			"list gateways: the API listed no gateways; refusing to validate against an empty list, which would quarantine every event (check the API token's organisation)",
			ErrTypeNoGateways, nil)
	}
	out := make([]warehouse.Gateway, len(gws))
	for i, g := range gws {
		out[i] = warehouse.Gateway{ID: g.ID, Name: g.Name, Team: g.Team, Environment: g.Environment}
	}
	return out, nil
}

// DownloadInput names the export to download and the load it feeds.
type DownloadInput struct {
	LoadID string
	Export keeptrusts.Export
}

// DownloadResult is where the file was staged.
type DownloadResult struct {
	Key       string
	Bytes     int64
	ResumedAt int64 // bytes already staged when this attempt started
}

// DownloadProgress is the heartbeat of a download.
type DownloadProgress struct {
	Bytes int64
}

// ExportKey is where an export's file is staged.
func ExportKey(loadID, exportID string) string {
	return "exports/" + loadID + "/" + exportID + ".data"
}

// DownloadExport stages the export file. The partial file is the
// progress: a retry (another attempt, another worker) continues after the
// bytes already staged with a Range request, and the heartbeat reports
// them. The file moves to its final key only once its sha256 matched.
func (a *Activities) DownloadExport(ctx context.Context, in DownloadInput) (DownloadResult, error) {
	key := ExportKey(in.LoadID, in.Export.ID)
	if err := staging.CheckKey(key); err != nil {
		return DownloadResult{}, temporal.NewNonRetryableApplicationError("download: "+err.Error(), ErrTypeAPI, err)
	}
	if n, err := a.Store.Size(ctx, key); err == nil { // done by an earlier attempt
		return DownloadResult{Key: key, Bytes: n, ResumedAt: n}, nil
	}
	f, offset, err := a.Store.Append(ctx, key+".part")
	if err != nil {
		return DownloadResult{}, classify("download", err)
	}
	defer f.Close()
	var last DownloadProgress
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &last) == nil {
		activity.GetLogger(ctx).Info("resuming download", "export", in.Export.ID, "staged_bytes", offset, "heartbeat_bytes", last.Bytes)
	}
	err = a.API.Download(ctx, in.Export, f, keeptrusts.DownloadOptions{
		Progress: func(n int64) { activity.RecordHeartbeat(ctx, DownloadProgress{Bytes: n}) },
	})
	if err != nil {
		return DownloadResult{}, classify("download export "+in.Export.ID, err)
	}
	st, err := f.Stat()
	if err != nil {
		return DownloadResult{}, classify("download", err)
	}
	if err := a.Store.Rename(ctx, key+".part", key); err != nil {
		return DownloadResult{}, classify("download", err)
	}
	return DownloadResult{Key: key, Bytes: st.Size(), ResumedAt: offset}, nil
}

// SplitInput names a staged file to split into chunks.
type SplitInput struct {
	LoadID   string
	Source   string
	Key      string
	Format   string
	Gzip     bool
	Gateways []string
}

// SplitProgress is the heartbeat of a split.
type SplitProgress struct {
	Records int64
}

// ManifestKey is where a load's manifest is staged, for replays.
func ManifestKey(loadID string) string { return "loads/" + loadID + "/manifest.json" }

// SplitExport validates, transforms and encodes a staged export file into
// chunk files. Chunk keys are deterministic, so a retry rewrites the same
// chunks; the manifest is staged too, so a replay can reload without the
// source.
func (a *Activities) SplitExport(ctx context.Context, in SplitInput) (staging.Manifest, error) {
	defer keepAlive(ctx, nil)()
	format, err := schemas.ParseFormat(in.Format)
	if err != nil {
		return staging.Manifest{}, temporal.NewNonRetryableApplicationError("split: "+err.Error(), ErrTypeMalformed, err)
	}
	sp, err := a.splitter(ctx, in.LoadID, in.Source, in.Gateways)
	if err != nil {
		return staging.Manifest{}, err
	}
	if err := a.splitFile(ctx, sp, in.Key, format, in.Gzip); err != nil {
		return staging.Manifest{}, err
	}
	return a.finish(ctx, sp)
}

// SplitStagedInput names staged JSON-array files (webhook deliveries) to
// split into one load's chunks.
type SplitStagedInput struct {
	LoadID   string
	Source   string
	Keys     []string
	Gateways []string
}

// SplitStagedResult is the load's manifest, and how many files were gone.
type SplitStagedResult struct {
	Manifest staging.Manifest
	Missing  int
}

// SplitStaged splits several staged files into one load. A file that is
// gone was loaded and removed by an earlier batch (a retried delivery
// signalled twice); it is counted, not an error.
func (a *Activities) SplitStaged(ctx context.Context, in SplitStagedInput) (SplitStagedResult, error) {
	defer keepAlive(ctx, nil)()
	sp, err := a.splitter(ctx, in.LoadID, in.Source, in.Gateways)
	if err != nil {
		return SplitStagedResult{}, err
	}
	var res SplitStagedResult
	for _, key := range in.Keys {
		if err := a.splitFile(ctx, sp, key, schemas.FormatJSON, false); errors.Is(err, staging.ErrNotFound) {
			res.Missing++
		} else if err != nil {
			return SplitStagedResult{}, err
		}
	}
	res.Manifest, err = a.finish(ctx, sp)
	return res, err
}

// splitFile feeds one staged file to the splitter. A missing file's error
// still matches staging.ErrNotFound.
func (a *Activities) splitFile(ctx context.Context, sp *staging.Splitter, key string, format schemas.Format, gzip bool) error {
	f, err := a.Store.Open(ctx, key)
	if err != nil {
		return classify("split", err)
	}
	defer f.Close()
	dec, err := schemas.NewDecoderLimits(f, format, gzip, a.limits())
	if err != nil {
		return classify("split "+key, &staging.MalformedError{Err: err})
	}
	defer dec.Close()
	return classify("split "+key, sp.Add(dec))
}

// RemoveStaged deletes staged files by key.
func (a *Activities) RemoveStaged(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := a.Store.RemoveAll(ctx, k); err != nil {
			return classify("remove staged", err)
		}
	}
	return nil
}

func (a *Activities) splitter(ctx context.Context, loadID, source string, gateways []string) (*staging.Splitter, error) {
	set := schemas.GatewaySet{}
	for _, g := range gateways {
		set[g] = true
	}
	sp, err := staging.NewSplitter(staging.SplitOptions{
		LoadID: loadID, Source: source, ChunkRows: a.ChunkRows, Gateways: set,
		IngestedAt: time.Now(), ProgressEvery: 10_000,
		Progress: func(n int64) { activity.RecordHeartbeat(ctx, SplitProgress{Records: n}) },
	}, staging.StoreSink(ctx, a.Store))
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError("split: "+err.Error(), ErrTypeMalformed, err)
	}
	return sp, nil
}

func (a *Activities) finish(ctx context.Context, sp *staging.Splitter) (staging.Manifest, error) {
	man, err := sp.Close()
	if err != nil {
		return staging.Manifest{}, classify("split", err)
	}
	w, err := a.Store.Create(ctx, ManifestKey(man.LoadID))
	if err != nil {
		return staging.Manifest{}, classify("write manifest", err)
	}
	if err := json.NewEncoder(w).Encode(man); err != nil {
		w.Close()
		return staging.Manifest{}, classify("write manifest", err)
	}
	if err := w.Close(); err != nil {
		return staging.Manifest{}, classify("write manifest", err)
	}
	return man, nil
}

// ReadManifest returns a staged load's manifest, for a replay from
// staging.
func (a *Activities) ReadManifest(ctx context.Context, loadID string) (staging.Manifest, error) {
	f, err := a.Store.Open(ctx, ManifestKey(loadID))
	if errors.Is(err, staging.ErrNotFound) {
		return staging.Manifest{}, temporal.NewNonRetryableApplicationError(
			"nothing staged for load "+loadID+"; replay it from the source (by window)", ErrTypeNothingStaged, err)
	}
	if err != nil {
		return staging.Manifest{}, classify("read manifest", err)
	}
	defer f.Close()
	var man staging.Manifest
	if err := json.NewDecoder(f).Decode(&man); err != nil {
		return staging.Manifest{}, temporal.NewNonRetryableApplicationError("read manifest of "+loadID+": "+err.Error(), ErrTypeNothingStaged, err)
	}
	return man, nil
}

// PullInput asks for a batch of pages after a cursor.
type PullInput struct {
	LoadID   string
	Cursor   string // "" on the very first pull: Since applies
	Since    string
	Pages    int
	PageSize int
	Gateways []string
}

// PullResult is a staged batch of pages and where to continue.
type PullResult struct {
	Manifest   staging.Manifest
	NextCursor string
	HasMore    bool
	Pages      int
}

// PullProgress is the heartbeat of a pull.
type PullProgress struct {
	Pages  int
	Cursor string
}

// PullPages reads up to in.Pages pages from the cursor, in ingestion
// order, and stages them as chunks of one load. It writes nothing to the
// warehouse, so a retry simply starts again from in.Cursor.
func (a *Activities) PullPages(ctx context.Context, in PullInput) (PullResult, error) {
	sp, err := a.splitter(ctx, in.LoadID, "pull", in.Gateways)
	if err != nil {
		return PullResult{}, err
	}
	res := PullResult{NextCursor: in.Cursor}
	for res.Pages < in.Pages {
		page, err := a.API.ListEvents(ctx, keeptrusts.PageQuery{Window: keeptrusts.Window{Since: in.Since}, Cursor: res.NextCursor, Limit: in.PageSize})
		if err != nil {
			return PullResult{}, classify("pull events", err)
		}
		dec, err := schemas.NewDecoderLimits(bytes.NewReader(page.Body), schemas.FormatJSON, false, a.limits())
		if err != nil {
			return PullResult{}, classify("pull events", &staging.MalformedError{Err: err})
		}
		if err := sp.Add(dec); err != nil {
			return PullResult{}, classify("pull events", err)
		}
		res.Pages++
		res.NextCursor, res.HasMore = page.NextCursor, page.HasMore
		activity.RecordHeartbeat(ctx, PullProgress{Pages: res.Pages, Cursor: res.NextCursor})
		if !page.HasMore {
			break
		}
	}
	res.Manifest, err = a.finish(ctx, sp)
	return res, err
}

// ChunkInput names one chunk of a load.
type ChunkInput struct {
	LoadID string
	Chunk  staging.Chunk
}

// StageChunk loads a chunk into its staging tables (WRITE_TRUNCATE with
// a job id from load, chunk and content: a retry replaces, never adds).
func (a *Activities) StageChunk(ctx context.Context, in ChunkInput) error {
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
	return classify(fmt.Sprintf("stage chunk %d of %s", in.Chunk.Index, in.LoadID), a.Warehouse.StageChunk(ctx, in.LoadID, in.Chunk, files))
}

// MergeInput names a load whose chunks are staged.
type MergeInput struct {
	LoadID string
	Source string
	Chunks []staging.Chunk
}

// MergeProgress is the heartbeat of a merge: chunks committed so far.
type MergeProgress struct {
	Done int
}

// MergeLoad commits the staged chunks into raw, fact and quarantine, in
// chunk order, then drops the staging tables. Each commit is guarded
// (anti-join inserts), so a chunk committed twice adds nothing; resuming
// after the last heartbeat only saves the work.
func (a *Activities) MergeLoad(ctx context.Context, in MergeInput) (int, error) {
	start := 0
	var p MergeProgress
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &p) == nil {
		start = p.Done
	}
	var done atomic.Int64
	done.Store(int64(start))
	defer keepAlive(ctx, func() any { return MergeProgress{Done: int(done.Load())} })()
	for i := start; i < len(in.Chunks); i++ {
		c := in.Chunks[i]
		err := a.Warehouse.CommitChunk(ctx, in.LoadID, in.Source, c)
		if errors.Is(err, warehouse.ErrStagingLost) {
			// A stage whose worker died can leave a short table; stage it
			// again from the chunk file and commit that.
			activity.GetLogger(ctx).Warn("re-staging chunk before commit", "load", in.LoadID, "chunk", c.Index, "reason", err)
			if err := a.StageChunk(ctx, ChunkInput{LoadID: in.LoadID, Chunk: c}); err != nil {
				return i, err
			}
			err = a.Warehouse.CommitChunk(ctx, in.LoadID, in.Source, c)
		}
		if err != nil {
			return i, classify("merge", err)
		}
		done.Store(int64(i + 1))
		activity.RecordHeartbeat(ctx, MergeProgress{Done: i + 1})
	}
	for _, c := range in.Chunks {
		if err := a.Warehouse.DropStaging(ctx, in.LoadID, c.Index); err != nil {
			return len(in.Chunks), classify("merge", err)
		}
	}
	return len(in.Chunks), nil
}

// RefreshDimensions rebuilds the dimensions (each replaced whole).
func (a *Activities) RefreshDimensions(ctx context.Context, gateways []warehouse.Gateway) error {
	defer keepAlive(ctx, nil)()
	return classify("refresh dimensions", a.Warehouse.RefreshDimensions(ctx, gateways, a.Prices, a.Users))
}

// Completeness is what CheckLoad reports.
type Completeness = warehouse.Completeness

// Gateway is a known gateway, as FetchGateways returns it.
type Gateway = warehouse.Gateway

// CheckLoad counts what a load left in the warehouse.
func (a *Activities) CheckLoad(ctx context.Context, loadID string) (Completeness, error) {
	defer keepAlive(ctx, nil)()
	c, err := a.Warehouse.CheckLoad(ctx, loadID)
	return c, classify("check load "+loadID, err)
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

// CheckpointInput is a checkpoint to store.
type CheckpointInput struct {
	Key, Value string
}

// ReadCheckpoint returns the stored checkpoint ("" when none).
func (a *Activities) ReadCheckpoint(ctx context.Context, key string) (string, error) {
	defer keepAlive(ctx, nil)()
	v, err := a.Warehouse.Checkpoint(ctx, key)
	return v, classify("read checkpoint", err)
}

// CheckpointTime returns when the stored checkpoint was written (zero
// when none): every event ingested before then has been merged.
func (a *Activities) CheckpointTime(ctx context.Context, key string) (time.Time, error) {
	defer keepAlive(ctx, nil)()
	t, err := a.Warehouse.CheckpointTime(ctx, key)
	return t, classify("read checkpoint time "+key, err)
}

// WriteCheckpoint stores a checkpoint; writing the same value twice is
// harmless.
func (a *Activities) WriteCheckpoint(ctx context.Context, in CheckpointInput) error {
	defer keepAlive(ctx, nil)()
	return classify("write checkpoint", a.Warehouse.SetCheckpoint(ctx, in.Key, in.Value))
}

// Window is a timestamp range [Since, Until).
type Window struct {
	Since, Until time.Time
}

// CountSource asks the API how many events the window holds.
func (a *Activities) CountSource(ctx context.Context, w Window) (int64, error) {
	n, err := a.API.Count(ctx, keeptrusts.Window{Since: w.Since.UTC().Format(time.RFC3339Nano), Until: w.Until})
	return n, classify("count source", err)
}

// WarehouseCount is what the warehouse holds for a window.
type WarehouseCount struct {
	Fact        int64
	Quarantined int64
	Unplaced    int64 // quarantined with no usable timestamp (any window)
}

// CountWarehouse counts fact and quarantine rows for the window.
func (a *Activities) CountWarehouse(ctx context.Context, w Window) (WarehouseCount, error) {
	defer keepAlive(ctx, nil)()
	fact, err := a.Warehouse.CountFact(ctx, w.Since, w.Until)
	if err != nil {
		return WarehouseCount{}, classify("count warehouse", err)
	}
	q, unplaced, err := a.Warehouse.CountQuarantined(ctx, w.Since, w.Until)
	return WarehouseCount{Fact: fact, Quarantined: q, Unplaced: unplaced}, classify("count warehouse", err)
}
