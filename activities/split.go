package activities

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

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
	sp, err := a.splitter(ctx, in.LoadID, in.Source, in.Gateways, a.exportChunks(in.Records))
	if err != nil {
		return payload.Manifest{}, err
	}
	defer sp.Abort() // after an error: no chunk file left open or half-written
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
	sp, err := a.splitter(ctx, in.LoadID, in.Source, in.Gateways, a.chunks())
	if err != nil {
		return payload.SplitStagedResult{}, err
	}
	defer sp.Abort() // after an error: no chunk file left open or half-written
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

// chunkSize is how large a split's chunks grow: rows, and bytes a file
// (0: staging.DefaultChunkBytes).
type chunkSize struct {
	rows  int
	bytes int64
}

// chunks is the configured size, KTPIPE_CHUNK_ROWS.
func (a *Activities) chunks() chunkSize { return chunkSize{rows: a.ChunkRows} }

// exportChunks is the size for an export of records records (its
// row_count, 0 when unknown): larger than configured when the export
// would otherwise take more than one commit (warehouse.ChunkRowsFor).
func (a *Activities) exportChunks(records int64) chunkSize {
	most := min(cmp.Or(a.ExportChunks, warehouse.MaxBatchChunks), warehouse.MaxBatchChunks)
	rows := warehouse.ChunkRowsFor(records, a.ChunkRows, most)
	if rows == a.ChunkRows {
		return a.chunks()
	}
	return chunkSize{rows: rows, bytes: staging.GrownChunkBytes(rows)}
}

// splitter splits into staging in chunks of size, heartbeating
// SplitProgress.
func (a *Activities) splitter(ctx context.Context, loadID, source string, gateways []string, size chunkSize) (*staging.Splitter, error) {
	progress := func(n int64) { activity.RecordHeartbeat(ctx, SplitProgress{Records: n}) }
	return a.splitterTo(ctx, loadID, source, gateways, staging.StoreSink(ctx, a.Store), progress, size)
}

// splitterTo splits into sink; progress, when given, is called every
// 10,000 records (an activity with progress of its own passes nil, so the
// split's heartbeat does not replace it).
func (a *Activities) splitterTo(ctx context.Context, loadID, source string, gateways []string, sink staging.Sink, progress func(int64), size chunkSize) (*staging.Splitter, error) {
	set := schemas.GatewaySet{}
	for _, g := range gateways {
		set[g] = true
	}
	sp, err := staging.NewSplitter(staging.SplitOptions{
		LoadID: loadID, Source: source, ChunkRows: size.rows, ChunkBytes: size.bytes, Gateways: set,
		IngestedAt: time.Now(), ProgressEvery: 10_000, Progress: progress,
	}, sink)
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
		staging.Discard(w) // Close would publish what was written
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
	// A manifest lists a load's chunks, kilobytes; a file past the bound
	// is not one.
	if err := json.NewDecoder(io.LimitReader(f, maxManifestBytes)).Decode(&man); err != nil {
		return payload.Manifest{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("read manifest of %s (at most %d bytes read): %v", loadID, maxManifestBytes, err), payload.ErrTypeNothingStaged, err)
	}
	return man, nil
}
