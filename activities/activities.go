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
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/api/googleapi"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
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
	// Metrics times chunk stages and commits (nil: not recorded).
	Metrics *metrics.Metrics

	dims refresher // coalesces RefreshDimensions calls on this worker
}

// The activities have the signatures workflows schedule them with, by
// payload's names.
var (
	_ payload.Activities = (*Activities)(nil)
	_ payload.Cleaner    = (*Cleaner)(nil)
)

func (a *Activities) limits() schemas.Limits {
	if a.Limits == (schemas.Limits{}) {
		return schemas.DefaultLimits
	}
	return a.Limits
}

// classify turns an error into what Temporal should do with it: wait for
// Retry-After, retry with backoff (5xx, 429, network), or stop (the
// request itself is wrong).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := op + ": " + err.Error()
	var ae *keeptrusts.APIError
	var se *warehouse.SchemaError
	var me *staging.MalformedError
	var ce *keeptrusts.ChecksumError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
		return temporal.NewApplicationErrorWithOptions(msg, payload.ErrTypeRateLimited, temporal.ApplicationErrorOptions{
			NextRetryDelay: max(ae.RetryAfter, time.Second), Cause: err})
	case errors.As(err, &ae) && ae.Code == "export_expired":
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeExpired, err)
	case errors.As(err, &ae) && (ae.Code == "cursor_expired" || ae.Code == "invalid_cursor"):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeCursorRejected, err)
	case errors.As(err, &ae) && !ae.Retryable():
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeAPI, err)
	case errors.As(err, &se):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeSchema, err)
	case errors.As(err, &me):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeMalformed, err)
	case errors.As(err, &ce):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeChecksum, err)
	case googleRejected(err):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeBigQuery, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// googleRejected reports whether BigQuery or Cloud Storage refused the
// request itself: HTTP 400, 403 or 404, or a job that failed for such a
// reason. Rate and quota limits (403 rateLimitExceeded) and backend
// errors are transient. See
// https://cloud.google.com/bigquery/docs/error-messages.
func googleRejected(err error) bool {
	transient := map[string]bool{"rateLimitExceeded": true, "quotaExceeded": true, "backendError": true,
		"internalError": true, "jobBackendError": true, "jobInternalError": true, "timeout": true, "stopped": true}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Code != http.StatusBadRequest && ge.Code != http.StatusForbidden && ge.Code != http.StatusNotFound {
			return false
		}
		if bodyCutShort(ge.Message) {
			return false
		}
		for _, e := range ge.Errors {
			if transient[e.Reason] {
				return false
			}
		}
		return true
	}
	var be *bigquery.Error
	if errors.As(err, &be) {
		switch be.Reason {
		case "invalidQuery", "invalid", "notFound", "accessDenied", "billingNotEnabled", "responseTooLarge":
			return true
		}
	}
	return false
}

// bodyCutShort reports whether a 400 says the request did not arrive
// whole (the server timed out reading it, or it ended early) rather than
// that it was wrong. The emulator answers 400 to an upload it stopped
// reading on a busy machine; sent again, the same request succeeds.
func bodyCutShort(msg string) bool {
	return strings.Contains(msg, "i/o timeout") || strings.HasSuffix(msg, ": EOF") || strings.Contains(msg, "unexpected EOF")
}

// bigQueryTries is how many attempts an activity makes before a BigQuery
// rejection is final. Not one: the emulator answers 400 to some races
// that heal (a job id another attempt just used), and a table dropped by
// a concurrent attempt is re-created by the retry. Three attempts cost a
// few seconds, not the hours a retry-forever would.
const bigQueryTries = 3

// classifyWarehouse is classify for warehouse activities: a BigQuery
// rejection is retried until the activity's bigQueryTries-th attempt.
func classifyWarehouse(ctx context.Context, op string, err error) error {
	err = classify(op, err)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == payload.ErrTypeBigQuery && activity.GetInfo(ctx).Attempt < bigQueryTries {
		return temporal.NewApplicationErrorWithCause(appErr.Message(), payload.ErrTypeBigQuery, appErr.Unwrap())
	}
	return err
}

// CreateExport creates the export, idempotently: the key is derived from
// the workflow id, so a retried create returns the export already made.
func (a *Activities) CreateExport(ctx context.Context, in payload.CreateExportInput) (payload.Export, error) {
	defer keepAlive(ctx, nil)()
	req := keeptrusts.ExportRequest{Type: "events", Format: in.Format, Compression: "none",
		Since: in.Since.UTC().Format(time.RFC3339Nano), Until: in.Until.UTC().Format(time.RFC3339Nano), Description: in.Description}
	if in.Gzip {
		req.Compression = "gzip"
	}
	exp, _, err := a.API.CreateExport(ctx, req, in.IdempotencyKey)
	return exp, classify("create export", err)
}

// GetExport reads an export's status; the workflow polls it with timers.
func (a *Activities) GetExport(ctx context.Context, id string) (payload.Export, error) {
	defer keepAlive(ctx, nil)()
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
func (a *Activities) FetchGateways(ctx context.Context) ([]payload.Gateway, error) {
	defer keepAlive(ctx, nil)()
	gws, err := a.API.Gateways(ctx)
	if err != nil {
		return nil, classify("list gateways", err)
	}
	if len(gws) == 0 {
		return nil, temporal.NewNonRetryableApplicationError(
			"list gateways: the API listed no gateways; refusing to validate against an empty list, which would quarantine every event (check the API token's organisation)",
			payload.ErrTypeNoGateways, nil)
	}
	out := make([]payload.Gateway, len(gws))
	for i, g := range gws {
		out[i] = payload.Gateway{ID: g.ID, Name: g.Name, Team: g.Team, Environment: g.Environment}
	}
	return out, nil
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
//
// It heartbeats from a ticker, not only when bytes arrive: Download waits
// between resumes (Retry-After, backoff), and an attempt that stops
// heartbeating is presumed dead and retried beside it. An attempt the
// server has given up on learns so at its next heartbeat and is
// cancelled. Until it has stopped, its lock on the partial file keeps the
// retry from appending to the same file (see openPart).
//
// A checksum mismatch discards the file; the whole export is downloaded
// once more, and a second mismatch is final (payload.ErrTypeChecksum): the
// export itself is bad, and downloading it forever would not heal it.
func (a *Activities) DownloadExport(ctx context.Context, in payload.DownloadInput) (payload.DownloadResult, error) {
	key := ExportKey(in.LoadID, in.Export.ID)
	if err := staging.CheckKey(key); err != nil {
		return payload.DownloadResult{}, temporal.NewNonRetryableApplicationError("download: "+err.Error(), payload.ErrTypeAPI, err)
	}
	if n, err := a.Store.Size(ctx, key); err == nil { // done by an earlier attempt
		return payload.DownloadResult{Key: key, Bytes: n, ResumedAt: n}, nil
	}
	var staged atomic.Int64
	defer keepAlive(ctx, func() any { return DownloadProgress{Bytes: staged.Load()} })()
	f, offset, err := a.openPart(ctx, key)
	if err != nil {
		return payload.DownloadResult{}, err
	}
	if f == nil { // an attempt we waited for finished it
		return payload.DownloadResult{Key: key, Bytes: offset, ResumedAt: offset}, nil
	}
	defer f.Close() // and so unlocks
	staged.Store(offset)
	var last DownloadProgress
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &last) == nil {
		activity.GetLogger(ctx).Info("resuming download", "export", in.Export.ID, "staged_bytes", offset, "heartbeat_bytes", last.Bytes)
	}
	for try := 1; ; try++ {
		err = a.API.Download(ctx, in.Export, f, keeptrusts.DownloadOptions{Progress: staged.Store})
		var ce *keeptrusts.ChecksumError
		if try < checksumTries && errors.As(err, &ce) {
			activity.GetLogger(ctx).Warn("export file failed its checksum; downloading it again", "export", in.Export.ID, "error", err)
			staged.Store(0)
			continue
		}
		break
	}
	if err != nil {
		return payload.DownloadResult{}, classify("download export "+in.Export.ID, err)
	}
	st, err := f.Stat()
	if err != nil {
		return payload.DownloadResult{}, classify("download", err)
	}
	if err := a.Store.Rename(ctx, key+".part", key); err != nil {
		return payload.DownloadResult{}, classify("download", err)
	}
	return payload.DownloadResult{Key: key, Bytes: st.Size(), ResumedAt: offset}, nil
}

// checksumTries is how many whole downloads of an export one attempt
// makes before a checksum mismatch is final.
const checksumTries = 2

// partLockWait bounds how long an attempt waits for another attempt to
// let go of the partial file. The other one is either alive (and will
// finish: then this one finds the file done) or was given up on by the
// server and is cancelled at its next heartbeat (a third of the heartbeat
// timeout). Past the wait the attempt fails and is retried.
const partLockWait = 30 * time.Second

// openPart opens key's partial file locked for this attempt alone, and
// returns it with the bytes already in it; or nil and the final size when
// an attempt it waited for has finished the file meanwhile.
func (a *Activities) openPart(ctx context.Context, key string) (*os.File, int64, error) {
	part := key + ".part"
	deadline := time.Now().Add(partLockWait)
	for {
		f, _, err := a.Store.Append(ctx, part)
		if err != nil {
			return nil, 0, classify("download", err)
		}
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, 0, classify("download", err)
		}
		if ok && samePath(f) {
			if n, err := a.Store.Size(ctx, key); err == nil {
				f.Close() // finished while we took the lock
				return nil, n, nil
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, 0, classify("download", err)
			}
			return f, st.Size(), nil
		}
		// Locked by another attempt, or locked but renamed away by one
		// that finished: look again shortly.
		f.Close()
		if n, err := a.Store.Size(ctx, key); err == nil {
			return nil, n, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("download: another attempt is still writing %s after %s", part, partLockWait)
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("download: waiting for %s: %w", part, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// samePath reports whether f is still the file its name points at (a
// finished attempt renames the partial file to the final key).
func samePath(f *os.File) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(f.Name())
	return err1 == nil && err2 == nil && os.SameFile(a, b)
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
func (a *Activities) SplitExport(ctx context.Context, in payload.SplitInput) (payload.Manifest, error) {
	defer keepAlive(ctx, nil)()
	format, err := schemas.ParseFormat(in.Format)
	if err != nil {
		return payload.Manifest{}, temporal.NewNonRetryableApplicationError("split: "+err.Error(), payload.ErrTypeMalformed, err)
	}
	sp, err := a.splitter(ctx, in.LoadID, in.Source, in.Gateways)
	if err != nil {
		return payload.Manifest{}, err
	}
	if err := a.splitFile(ctx, sp, in.Key, format, in.Gzip); err != nil {
		return payload.Manifest{}, err
	}
	return a.finish(ctx, sp)
}

// SplitStaged splits several staged files into one load. A file that is
// gone was loaded and removed by an earlier batch (a retried delivery
// signalled twice); it is counted, not an error.
func (a *Activities) SplitStaged(ctx context.Context, in payload.SplitStagedInput) (payload.SplitStagedResult, error) {
	defer keepAlive(ctx, nil)()
	sp, err := a.splitter(ctx, in.LoadID, in.Source, in.Gateways)
	if err != nil {
		return payload.SplitStagedResult{}, err
	}
	var res payload.SplitStagedResult
	for _, key := range in.Keys {
		if err := a.splitFile(ctx, sp, key, schemas.FormatJSON, false); errors.Is(err, staging.ErrNotFound) {
			res.Missing++
		} else if err != nil {
			return payload.SplitStagedResult{}, err
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
	rec := &readErrors{r: f}
	dec, err := schemas.NewDecoderLimits(rec, format, gzip, a.limits())
	if err != nil {
		err = &staging.MalformedError{Err: err}
	} else {
		defer dec.Close()
		err = sp.Add(dec)
	}
	if rec.err != nil {
		// The staged file failed to read under the decoder (a disk
		// error): the file is not malformed, and a retry reads it again.
		return classify("split", fmt.Errorf("read %s from the staging store: %w", key, rec.err))
	}
	return classify("split "+key, err)
}

// readErrors remembers the first error a reader returned other than EOF,
// so that a failing read is told apart from a malformed file.
type readErrors struct {
	r   io.Reader
	err error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// RemoveStaged deletes staged files by key.
func (a *Activities) RemoveStaged(ctx context.Context, keys []string) error {
	// Hundreds of deliveries' keys on a bucket can outlast the heartbeat
	// timeout.
	defer keepAlive(ctx, nil)()
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
		return nil, temporal.NewNonRetryableApplicationError("split: "+err.Error(), payload.ErrTypeMalformed, err)
	}
	return sp, nil
}

func (a *Activities) finish(ctx context.Context, sp *staging.Splitter) (payload.Manifest, error) {
	man, err := sp.Close()
	if err != nil {
		return payload.Manifest{}, classify("split", err)
	}
	w, err := a.Store.Create(ctx, ManifestKey(man.LoadID))
	if err != nil {
		return payload.Manifest{}, classify("write manifest", err)
	}
	if err := json.NewEncoder(w).Encode(man); err != nil {
		w.Close()
		return payload.Manifest{}, classify("write manifest", err)
	}
	if err := w.Close(); err != nil {
		return payload.Manifest{}, classify("write manifest", err)
	}
	return man, nil
}

// ReadManifest returns a staged load's manifest, for a replay from
// staging.
func (a *Activities) ReadManifest(ctx context.Context, loadID string) (payload.Manifest, error) {
	defer keepAlive(ctx, nil)() // a bucket read can outlast the heartbeat timeout
	f, err := a.Store.Open(ctx, ManifestKey(loadID))
	if errors.Is(err, staging.ErrNotFound) {
		return payload.Manifest{}, temporal.NewNonRetryableApplicationError(
			"nothing staged for load "+loadID+"; replay it from the source (by window)", payload.ErrTypeNothingStaged, err)
	}
	if err != nil {
		return payload.Manifest{}, classify("read manifest", err)
	}
	defer f.Close()
	var man payload.Manifest
	if err := json.NewDecoder(f).Decode(&man); err != nil {
		return payload.Manifest{}, temporal.NewNonRetryableApplicationError("read manifest of "+loadID+": "+err.Error(), payload.ErrTypeNothingStaged, err)
	}
	return man, nil
}

// PullProgress is the heartbeat of a pull.
type PullProgress struct {
	Pages  int
	Cursor string
}

// PullPages reads up to in.Pages pages from the cursor, in ingestion
// order, and stages them as chunks of one load. It writes nothing to the
// warehouse, so a retry simply starts again from in.Cursor. It heartbeats
// from a ticker too, so a slow page is not taken for a dead worker.
func (a *Activities) PullPages(ctx context.Context, in payload.PullInput) (payload.PullResult, error) {
	sp, err := a.splitter(ctx, in.LoadID, "pull", in.Gateways)
	if err != nil {
		return payload.PullResult{}, err
	}
	res := payload.PullResult{NextCursor: in.Cursor}
	var progress atomic.Pointer[PullProgress]
	progress.Store(&PullProgress{Cursor: in.Cursor})
	defer keepAlive(ctx, func() any { return *progress.Load() })()
	for res.Pages < in.Pages {
		page, err := a.API.ListEvents(ctx, keeptrusts.PageQuery{Window: keeptrusts.Window{Since: in.Since}, Cursor: res.NextCursor, Limit: in.PageSize})
		if err != nil {
			return payload.PullResult{}, classify("pull events", err)
		}
		dec, err := schemas.NewDecoderLimits(bytes.NewReader(page.Body), schemas.FormatJSON, false, a.limits())
		if err != nil {
			return payload.PullResult{}, classify("pull events", &staging.MalformedError{Err: err})
		}
		if err := sp.Add(dec); err != nil {
			return payload.PullResult{}, classify("pull events", err)
		}
		res.Pages++
		res.NextCursor, res.HasMore = page.NextCursor, page.HasMore
		progress.Store(&PullProgress{Pages: res.Pages, Cursor: res.NextCursor})
		activity.RecordHeartbeat(ctx, *progress.Load())
		if !page.HasMore {
			break
		}
	}
	res.Manifest, err = a.finish(ctx, sp)
	return res, err
}

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
// chunk order, then drops the staging tables. Each commit is guarded
// (anti-join inserts), so a chunk committed twice adds nothing; resuming
// after the last heartbeat only saves the work.
func (a *Activities) MergeLoad(ctx context.Context, in payload.MergeInput) (int, error) {
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
		start := time.Now()
		err := a.Warehouse.CommitChunk(ctx, in.LoadID, in.Source, c)
		a.Metrics.ObserveCommit(time.Since(start))
		if errors.Is(err, warehouse.ErrStagingLost) {
			// A stage whose worker died can leave a short table; stage it
			// again from the chunk file and commit that.
			activity.GetLogger(ctx).Warn("re-staging chunk before commit", "load", in.LoadID, "chunk", c.Index, "reason", err)
			if err := a.StageChunk(ctx, payload.ChunkInput{LoadID: in.LoadID, Chunk: c}); err != nil {
				return i, err
			}
			err = a.Warehouse.CommitChunk(ctx, in.LoadID, in.Source, c)
		}
		if err != nil {
			return i, classifyWarehouse(ctx, "merge", err)
		}
		done.Store(int64(i + 1))
		activity.RecordHeartbeat(ctx, MergeProgress{Done: i + 1})
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
	return len(in.Chunks), nil
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

// ReadCheckpoint returns the stored checkpoint ("" when none).
func (a *Activities) ReadCheckpoint(ctx context.Context, key string) (string, error) {
	defer keepAlive(ctx, nil)()
	v, err := a.Warehouse.Checkpoint(ctx, key)
	return v, classifyWarehouse(ctx, "read checkpoint", err)
}

// CheckpointTime returns when the stored checkpoint was written (zero
// when none): every event ingested before then has been merged.
func (a *Activities) CheckpointTime(ctx context.Context, key string) (time.Time, error) {
	defer keepAlive(ctx, nil)()
	t, err := a.Warehouse.CheckpointTime(ctx, key)
	return t, classifyWarehouse(ctx, "read checkpoint time "+key, err)
}

// WriteCheckpoint stores a checkpoint; writing the same value twice is
// harmless.
func (a *Activities) WriteCheckpoint(ctx context.Context, in payload.CheckpointInput) error {
	defer keepAlive(ctx, nil)()
	return classifyWarehouse(ctx, "write checkpoint", a.Warehouse.SetCheckpoint(ctx, in.Key, in.Value))
}

// CountSource asks the API how many events the window holds.
func (a *Activities) CountSource(ctx context.Context, w payload.Window) (int64, error) {
	defer keepAlive(ctx, nil)()
	n, err := a.API.Count(ctx, keeptrusts.Window{Since: w.Since.UTC().Format(time.RFC3339Nano), Until: w.Until})
	return n, classify("count source", err)
}

// CountWarehouse counts fact and quarantine rows for the window.
func (a *Activities) CountWarehouse(ctx context.Context, w payload.Window) (payload.WarehouseCount, error) {
	defer keepAlive(ctx, nil)()
	fact, err := a.Warehouse.CountFact(ctx, w.Since, w.Until)
	if err != nil {
		return payload.WarehouseCount{}, classifyWarehouse(ctx, "count warehouse", err)
	}
	q, unplaced, err := a.Warehouse.CountQuarantined(ctx, w.Since, w.Until)
	return payload.WarehouseCount{Fact: fact, Quarantined: q, Unplaced: unplaced}, classifyWarehouse(ctx, "count warehouse", err)
}

// WorkflowOutcome looks up a workflow by id (its latest run): running,
// or how it ended. A backfill uses it for a window whose child id is
// taken by a run it did not start (an earlier backfill's), to wait for
// that run and count its real result.
func (a *Activities) WorkflowOutcome(ctx context.Context, workflowID string) (payload.RunOutcome, error) {
	defer keepAlive(ctx, nil)()
	c := activity.GetClient(ctx)
	desc, err := c.DescribeWorkflow(ctx, workflowID, "")
	if err != nil {
		return payload.RunOutcome{}, fmt.Errorf("describe workflow %s: %w", workflowID, err)
	}
	if desc.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return payload.RunOutcome{Running: true}, nil
	}
	var res struct{ Rows, Quarantined int64 }
	err = c.GetWorkflow(ctx, workflowID, "").Get(ctx, &res)
	var wfErr *temporal.WorkflowExecutionError
	switch {
	case err == nil:
		return payload.RunOutcome{Rows: res.Rows, Quarantined: res.Quarantined}, nil
	case errors.As(err, &wfErr):
		return payload.RunOutcome{Failed: wfErr.Error()}, nil
	}
	return payload.RunOutcome{}, fmt.Errorf("result of workflow %s: %w", workflowID, err)
}
