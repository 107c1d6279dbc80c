package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
)

// Loads waiting for the compaction are marked in the staging store, one
// small file each under pendingDir: the mark is durable, costs no
// BigQuery statement, and the clean-up keeps a marked load's files (see
// sweepRule).
const pendingDir = "pending"

// PendingKey is where the mark of a load waiting for the compaction lives.
func PendingKey(loadID string) string { return pendingDir + "/" + loadID + "/load.json" }

// maxManifestBytes bounds a load's manifest read back, staged or in its
// pending mark: one of staging.MaxChunks chunks is far smaller.
const maxManifestBytes = 4 << 20

// Bounds of one listing of pending loads, whatever the workflow asks.
const (
	maxPendingLoads  = 1000
	maxPendingChunks = 10_000
)

// DeferLoad marks a staged load as waiting for the compaction. Writing
// the mark again replaces it with the same content.
func (a *Activities) DeferLoad(ctx context.Context, in payload.PendingLoad) error {
	defer keepAlive(ctx, nil)()
	if err := staging.CheckKey(PendingKey(in.Manifest.LoadID)); err != nil {
		return temporal.NewNonRetryableApplicationError("defer load: "+err.Error(), payload.ErrTypeMalformed, err)
	}
	w, err := a.Store.Create(ctx, PendingKey(in.Manifest.LoadID))
	if err != nil {
		return classify("defer load "+in.Manifest.LoadID, err)
	}
	if err := json.NewEncoder(w).Encode(in); err != nil {
		staging.Discard(w) // Close would publish what was written
		return classify("defer load "+in.Manifest.LoadID, err)
	}
	return classify("defer load "+in.Manifest.LoadID, w.Close())
}

// PendingLoads lists the loads waiting for the compaction, in key order,
// up to in.MaxLoads loads and in.MaxChunks chunks (the first load is
// returned even if it alone has more chunks), each bounded by
// maxPendingLoads and maxPendingChunks. A mark whose content is bad is
// passed over and named in Unreadable (at most the loads' bound, then the
// listing fails), so one bad file does not hold back every other load's
// commit; a mark the store fails to read fails the listing, for a retry.
func (a *Activities) PendingLoads(ctx context.Context, in payload.PendingLoadsInput) (payload.PendingLoadsResult, error) {
	defer keepAlive(ctx, nil)()
	maxLoads, maxChunks := boundOr(in.MaxLoads, maxPendingLoads), boundOr(in.MaxChunks, maxPendingChunks)
	keys, err := a.Store.List(ctx, pendingDir)
	if err != nil {
		return payload.PendingLoadsResult{}, classify("list pending loads", err)
	}
	var res payload.PendingLoadsResult
	chunks := 0
	for _, key := range keys {
		id, ok := pendingOf(key)
		if !ok {
			continue // a partial write's temporary file, or not a mark
		}
		if slices.Contains(in.Exclude, id) {
			continue
		}
		p, err := a.readPending(ctx, key)
		if errors.Is(err, staging.ErrNotFound) {
			continue // finished since the listing
		}
		var bad *temporal.ApplicationError
		if errors.As(err, &bad) && bad.Type() == payload.ErrTypeMalformed {
			if len(res.Unreadable) == maxLoads {
				return res, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("list pending loads: more than %d marks cannot be read, the last %s", maxLoads, err), payload.ErrTypeMalformed, err)
			}
			activity.GetLogger(ctx).Error("pending mark cannot be read; passed over", "key", key, "error", err)
			res.Unreadable = append(res.Unreadable, id)
			continue
		}
		if err != nil {
			return res, err
		}
		n := len(p.Manifest.Chunks)
		if len(res.Loads) == maxLoads || (len(res.Loads) > 0 && chunks+n > maxChunks) {
			res.More = true
			break
		}
		res.Loads = append(res.Loads, p)
		chunks += n
	}
	return res, nil
}

func (a *Activities) readPending(ctx context.Context, key string) (payload.PendingLoad, error) {
	f, err := a.Store.Open(ctx, key)
	if err != nil {
		if errors.Is(err, staging.ErrNotFound) {
			return payload.PendingLoad{}, err
		}
		return payload.PendingLoad{}, classify("read "+key, err)
	}
	defer f.Close()
	var p payload.PendingLoad
	rec := &readErrors{r: io.LimitReader(f, maxManifestBytes)}
	err = json.NewDecoder(rec).Decode(&p)
	if rec.err != nil {
		// The store failed under the decoder (a disk or network error):
		// the mark is not bad, and a retry reads it again.
		return p, classify("read "+key+" from the staging store", rec.err)
	}
	if err != nil {
		// A mark ktpipe did not write whole: the operator must look (the
		// load it names, if any, can be replayed).
		return p, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("read %s: not a pending load of at most %d bytes: %v; %s", key, maxManifestBytes, err, replayMark(key)),
			payload.ErrTypeMalformed, err)
	}
	if want := PendingKey(p.Manifest.LoadID); want != key {
		return p, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("read %s: it names load %q, whose mark is %s; %s", key, p.Manifest.LoadID, want, replayMark(key)),
			payload.ErrTypeMalformed, nil)
	}
	return p, nil
}

// replayMark says what to do about the unreadable mark at key.
func replayMark(key string) string {
	id, _ := pendingOf(key)
	return fmt.Sprintf("replay load %s (ktpipe replay --load-id %s), which removes the mark, or remove the mark when nothing is staged for it", id, id)
}

// maxFinishLoads bounds the loads one FinishLoads takes: a compaction's
// round at most.
const maxFinishLoads = maxPendingLoads

// FinishLoads removes the marks of loads the compaction committed and
// checked, then their staged files: one activity a round, not two a
// load, so the compaction's history grows with its rounds. Removing
// again does nothing; files a crash leaves behind the clean-up removes.
func (a *Activities) FinishLoads(ctx context.Context, loadIDs []string) error {
	defer keepAlive(ctx, nil)()
	if len(loadIDs) > maxFinishLoads {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("finish loads: %d loads, at most %d", len(loadIDs), maxFinishLoads), payload.ErrTypeBadInput, nil)
	}
	for _, id := range loadIDs {
		if err := staging.CheckKey(PendingKey(id)); err != nil {
			return temporal.NewNonRetryableApplicationError("finish loads: "+err.Error(), payload.ErrTypeBadInput, err)
		}
	}
	for _, id := range loadIDs {
		if err := a.Store.RemoveAll(ctx, pendingDir+"/"+id); err != nil {
			return classify("finish load "+id, err)
		}
	}
	for _, id := range loadIDs {
		if err := a.removeLoadFiles(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// RefreshPendingGauges publishes how many loads wait for the compaction
// and when the oldest mark was written (ktpipe_pending_loads,
// ktpipe_oldest_pending_load_timestamp_seconds), so a compaction that
// stalls shows before completeness does. Every worker does it at every
// KTPIPE_METRICS_REFRESH tick: the daily clean-up's walk
// would see a stall a day late. It costs one listing of pendingDir (one
// request a 1,000 marks on a bucket) and reads no mark: a mark's time is
// when DeferLoad wrote it. Memory stays the same however many wait; the
// caller's context bounds the time. On an error the gauges keep their
// values: the alert computes the age from the time, so a stall that also
// breaks the listing still shows. ktpipe_pending_look_success says how the
// look went, for a worker that never had a time to keep (restarted while
// its looks fail).
func RefreshPendingGauges(ctx context.Context, store staging.Store, m *metrics.Metrics) (err error) {
	defer func() {
		// A look cut short because the worker stops says nothing of the
		// store; one past its time bound does.
		if !errors.Is(err, context.Canceled) {
			m.SetPendingLook(err == nil)
		}
	}()
	w, ok := store.(staging.Sweeper)
	if !ok {
		return fmt.Errorf("pending loads: staging store %T cannot list its files with their times", store)
	}
	loads := 0
	var oldest time.Time
	err = w.WalkUnder(ctx, pendingDir, func(e staging.Entry) error {
		if _, ok := pendingOf(e.Key); !ok {
			return nil // a partial write's temporary file
		}
		loads++
		if oldest.IsZero() || e.ModTime.Before(oldest) {
			oldest = e.ModTime
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pending loads: %w", err)
	}
	m.SetPending(loads, oldest)
	return nil
}

// boundOr is n within (0, bound], or bound when n is not positive.
func boundOr(n, bound int) int {
	if n <= 0 || n > bound {
		return bound
	}
	return n
}
