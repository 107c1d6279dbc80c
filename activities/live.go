package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"

	"go.temporal.io/sdk/activity"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// LandLive streams the valid events of staged webhook deliveries into
// live_events, for the live view, before their batch commits them. It
// splits each file as SplitStaged does (the same validation, the same
// gateways, the same rows), but its rows go to BigQuery's streaming
// insert, a bounded request at a time, and nothing is staged. Invalid
// records are left to the batch's commit, which quarantines them. After
// each group of files it heartbeats the next, where a retry resumes; a
// retry may still stream a group's rows twice, and the view keeps one per
// event id.
func (a *Activities) LandLive(ctx context.Context, in payload.LandLiveInput) (res payload.LandLiveResult, err error) {
	var done LiveProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &done) // unreadable: start over, which only streams again
	}
	var mu sync.Mutex
	progress := done
	// The keep-alive repeats the progress: a heartbeat without details
	// would leave a retry none.
	defer keepAlive(ctx, func() any { mu.Lock(); defer mu.Unlock(); return progress })()
	res.Rows = done.Rows
	defer func() { a.Metrics.LiveLanded(res.Rows-done.Rows, err != nil) }()
	sink := &liveSink{ctx: ctx, insert: a.liveInsert(), streamed: &res.Rows}
	for start := done.Next; start < len(in.Keys); start += liveGroup {
		// A splitter a group of files: closing it streams the group's
		// last rows, so the heartbeat below is true, and a group's rows
		// share requests of up to MaxLiveRows.
		sp, err := a.splitterTo(ctx, in.LoadID, payload.SourceWebhook, in.Gateways, sink, nil, a.chunks())
		if err != nil {
			return res, err
		}
		end := min(start+liveGroup, len(in.Keys))
		for _, key := range in.Keys[start:end] {
			err := a.splitFile(ctx, sp, key, schemas.FormatJSON, false)
			if errors.Is(err, staging.ErrNotFound) { // gone: staged by its batch and removed already
				res.Gone++
				continue
			}
			if err != nil {
				sp.Abort() // the group's unsent rows: its retry streams them
				return res, err
			}
		}
		if _, err := sp.Close(); err != nil {
			sp.Abort()
			return res, classify("land live rows", err)
		}
		mu.Lock()
		progress = LiveProgress{Next: end, Rows: res.Rows}
		mu.Unlock()
		activity.RecordHeartbeat(ctx, progress)
	}
	if res.Gone > 0 {
		// Not an error: the batch has them. Said, so a live view that
		// lacks them for a compaction interval is explained.
		activity.GetLogger(ctx).Warn("delivery files gone before their live landing; their events show once their load commits",
			"load", in.LoadID, "gone", res.Gone, "files", len(in.Keys))
	}
	return res, nil
}

// liveInsert is what streams rows into live_events.
func (a *Activities) liveInsert() func(context.Context, []json.RawMessage) error {
	if a.InsertLive != nil {
		return a.InsertLive
	}
	return a.Warehouse.InsertLive
}

// liveGroup is how many files a landing streams between heartbeats: a
// retry resumes after the last group streamed.
const liveGroup = 64

// LiveProgress is the heartbeat of a landing: the next file, and the
// rows streamed before it.
type LiveProgress struct {
	Next int
	Rows int64
}

// liveSink takes the splitter's chunk files: rows are streamed, quarantine
// files dropped.
type liveSink struct {
	ctx      context.Context
	insert   func(context.Context, []json.RawMessage) error
	streamed *int64
}

func (s *liveSink) Create(key string) (io.WriteCloser, error) {
	if strings.Contains(key, "/quarantine-") {
		return discard{}, nil
	}
	return &liveWriter{ctx: s.ctx, insert: s.insert, streamed: s.streamed}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Close() error                { return nil }

// liveWriter cuts the NDJSON the splitter writes into rows and streams
// them at most warehouse.MaxLiveRows rows and MaxLiveBytes a request: it
// holds one request's rows and one partial line.
type liveWriter struct {
	ctx      context.Context
	insert   func(context.Context, []json.RawMessage) error
	streamed *int64 // rows streamed, for the result

	partial []byte
	rows    []json.RawMessage
	size    int
}

func (w *liveWriter) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			w.partial = append(w.partial, rest...)
			break
		}
		w.partial = append(w.partial, rest[:i]...)
		rest = rest[i+1:]
		if err := w.add(w.partial); err != nil {
			return 0, err
		}
		w.partial = w.partial[:0]
	}
	return len(p), nil
}

func (w *liveWriter) add(row []byte) error {
	if len(row) > warehouse.MaxLiveBytes {
		// Too large for one request: it shows once the batch commits.
		return nil
	}
	if len(w.rows) == warehouse.MaxLiveRows || w.size+len(row) > warehouse.MaxLiveBytes {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.rows = append(w.rows, append(json.RawMessage(nil), row...))
	w.size += len(row)
	return nil
}

func (w *liveWriter) flush() error {
	if len(w.rows) == 0 {
		return nil
	}
	if err := w.insert(w.ctx, w.rows); err != nil {
		return err // the split's classify marks it
	}
	*w.streamed += int64(len(w.rows))
	w.rows, w.size = w.rows[:0], 0
	return nil
}

// Discard drops the rows not yet streamed (the split failed; a retry
// streams the group again).
func (w *liveWriter) Discard() { w.rows, w.partial, w.size = nil, nil, 0 }

func (w *liveWriter) Close() error {
	if len(w.partial) > 0 {
		return errors.New("land live rows: a chunk ended inside a row")
	}
	return w.flush()
}
