package activities

import (
	"bytes"
	"context"
	"sync/atomic"

	"go.temporal.io/sdk/activity"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
)

// PullProgress is the heartbeat of a pull.
type PullProgress struct {
	Pages  int
	Cursor string
	// Stalled says the server answered has-more with the cursor it was
	// sent: the batch ended there rather than ask for the same page again.
	Stalled bool `json:",omitempty"`
}

// PullPages reads up to in.Pages pages from the cursor, in ingestion
// order, and stages them as chunks of one load. It writes nothing to the
// warehouse, so a retry simply starts again from in.Cursor. It heartbeats
// from a ticker too, so a slow page is not taken for a dead worker.
func (a *Activities) PullPages(ctx context.Context, in payload.PullInput) (payload.PullResult, error) {
	sp, err := a.splitter(ctx, in.LoadID, "pull", in.Gateways, a.chunks())
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
		sent := res.NextCursor
		res.NextCursor, res.HasMore = page.NextCursor, page.HasMore
		// A cursor that does not move would give the same page forever
		// (and the workflow continues-as-new with it, forever). Every
		// event ingested after a cursor is served after it, so nothing is
		// lost by stopping: the schedule's next run asks again.
		stalled := page.HasMore && page.NextCursor == sent
		if stalled {
			res.HasMore = false
			activity.GetLogger(ctx).Warn("pull: server sent has-more with an unchanged cursor; ending the batch until the next run",
				"cursor", sent, "pages", res.Pages)
		}
		progress.Store(&PullProgress{Pages: res.Pages, Cursor: res.NextCursor, Stalled: stalled})
		activity.RecordHeartbeat(ctx, *progress.Load())
		if !res.HasMore {
			break
		}
	}
	res.Manifest, err = a.finish(ctx, sp)
	return res, err
}
