package activities

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
)

// PullProgress is the heartbeat of a pull.
type PullProgress struct {
	Pages  int
	Cursor string
}

// PullPages reads up to in.Pages pages from the cursor, in ingestion
// order, and stages them as chunks of one load. It writes nothing to the
// warehouse, so a retry simply starts again from in.Cursor. A retryable
// failure past the first page ends the batch early instead (see below).
// It heartbeats from a ticker too, so a slow page is not taken for a
// dead worker.
func (a *Activities) PullPages(ctx context.Context, in payload.PullInput) (payload.PullResult, error) {
	sp, err := a.splitter(ctx, in.LoadID, "pull", in.Gateways, a.chunks())
	if err != nil {
		return payload.PullResult{}, err
	}
	defer sp.Abort() // after an error: no chunk file left open or half-written
	res := payload.PullResult{NextCursor: in.Cursor}
	var progress atomic.Pointer[PullProgress]
	progress.Store(&PullProgress{Cursor: in.Cursor})
	defer keepAlive(ctx, func() any { return *progress.Load() })()
	for res.Pages < in.Pages {
		page, err := a.API.ListEvents(ctx, keeptrusts.PageQuery{Window: keeptrusts.Window{Since: in.Since}, Cursor: res.NextCursor, Limit: in.PageSize})
		if err != nil && res.Pages > 0 && keeptrusts.Retryable(err) && ctx.Err() == nil {
			// Failing here would discard the pages staged, and a server
			// whose rate limit is smaller than a batch would refuse every
			// attempt at the same page: the batch ends with the pages it
			// has, fully split, and the next batch asks for this page
			// again. The wait is here, as the workflow starts the next
			// batch at once and the contract has a client wait out
			// Retry-After (at most keeptrusts.MaxRetryAfter).
			wait := keeptrusts.RetryAfter(err)
			activity.GetLogger(ctx).Warn("pull: a page request failed; the batch ends early with the pages read, the next batch continues after them",
				"pages", res.Pages, "retry_after", wait, "error", err)
			if err := sleep(ctx, wait); err != nil {
				return payload.PullResult{}, fmt.Errorf("pull events: waiting out Retry-After: %w", err)
			}
			break // res says has-more, with the cursor of this page
		}
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
		sent := res.NextCursor
		res.NextCursor, res.HasMore = page.NextCursor, page.HasMore
		// A cursor that does not move would give the same page forever
		// (and the workflow continues as new with it, forever); ended
		// quietly, the pull would checkpoint it every run and never move,
		// which no alert sees while webhooks bring the events. The
		// contract serves every event ingested after a cursor after it:
		// this server does not. Past the batch's first page, the batch
		// ends there and loads what it has (the checkpoint moves to the
		// stuck cursor); on its first page, the run fails
		// (KtpipeWorkflowFailed, the checkpoint unmoved) and the next
		// scheduled run asks again.
		if page.HasMore && page.NextCursor == sent {
			if res.Pages == 1 {
				return payload.PullResult{}, temporal.NewNonRetryableApplicationError(
					"pull events: the server answered has-more with the cursor it was sent, so its next page would be this one again; the contract serves every event ingested after a cursor after it",
					payload.ErrTypeAPI, nil)
			}
			res.HasMore = false
			activity.GetLogger(ctx).Warn("pull: the server answered has-more with the cursor it was sent; the batch ends there, and the next run fails on it unless it moves",
				"pages", res.Pages)
		}
		progress.Store(&PullProgress{Pages: res.Pages, Cursor: res.NextCursor})
		activity.RecordHeartbeat(ctx, *progress.Load())
		if !res.HasMore {
			break
		}
	}
	res.Manifest, err = a.finish(ctx, sp)
	return res, err
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
