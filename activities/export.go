package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
)

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
// them. The file moves to its final key only once its size and sha256
// matched (keeptrusts.Download).
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
		// The export id the API gave cannot name a staged file: the
		// source sent something malformed, which no retry changes.
		return payload.DownloadResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("download: export id %q: %v", in.Export.ID, err), payload.ErrTypeMalformed, err)
	}
	if n, err := a.Store.Size(ctx, key); err == nil { // done by an earlier attempt
		if wholeSize(in.Export, n) {
			return payload.DownloadResult{Key: key, Bytes: n, ResumedAt: n}, nil
		}
		// Short or long (a host crash before its bytes reached the disk):
		// downloaded again.
		activity.GetLogger(ctx).Warn("staged export file is not the export's size; downloading it again", "export", in.Export.ID, "bytes", n, "size", *in.Export.SizeBytes)
		if err := a.Store.RemoveAll(ctx, key); err != nil {
			return payload.DownloadResult{}, classify("download", err)
		}
	}
	var staged atomic.Int64
	defer keepAlive(ctx, func() any { return DownloadProgress{Bytes: staged.Load()} })()
	f, offset, err := a.openPart(ctx, key)
	if err != nil {
		return payload.DownloadResult{}, err
	}
	if f == nil { // an attempt we waited for finished it
		if !wholeSize(in.Export, offset) {
			return payload.DownloadResult{}, fmt.Errorf("download export %s: the attempt before staged %d bytes of %d; the next attempt downloads it again", in.Export.ID, offset, *in.Export.SizeBytes)
		}
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
	// On the disk before it is published: a file found under its final
	// key is taken as done by a later attempt.
	if err := f.Sync(); err != nil {
		return payload.DownloadResult{}, classify("download", err)
	}
	if err := a.Store.Rename(ctx, key+".part", key); err != nil {
		return payload.DownloadResult{}, classify("download", err)
	}
	return payload.DownloadResult{Key: key, Bytes: st.Size(), ResumedAt: offset}, nil
}

// wholeSize says a staged file of n bytes is the whole export, as far as
// its size tells (the contract lets size_bytes be null: then it cannot).
func wholeSize(exp payload.Export, n int64) bool {
	return exp.SizeBytes == nil || *exp.SizeBytes == n
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
