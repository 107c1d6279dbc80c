package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
)

// Retention of staged files.
const (
	// DefaultStagingRetention keeps a failed load's files a week: long
	// enough to notice it (a weekend included) and replay it from staging
	// (ktpipe replay --load-id), and the same week after which its
	// BigQuery staging tables expire.
	DefaultStagingRetention = 7 * 24 * time.Hour
	// MinStagingRetention is far above the longest activity (2 h) and
	// its retries (6 h), so a file a live attempt is writing is never
	// old enough, even when the list of open runs lags.
	MinStagingRetention = 24 * time.Hour
)

// Bounds of one clean-up run; what is left is removed by the next run.
const (
	maxCleanupLoads = 100_000 // distinct loads tracked in memory
	maxCleanupFiles = 100_000 // files removed per run
	// cleanupMargin: a run stops removing this long before its
	// activity's deadline, and says there is more.
	cleanupMargin = 10 * time.Minute
	maxOpenRuns   = 10_000 // open runs listed; more and nothing is removed
	// deliveryMargin: a webhook batch starts within moments of its first
	// delivery being staged; an open batch started up to this long after
	// a delivery file was written may still need it.
	deliveryMargin = time.Hour
)

// Cleaner removes staged files that no load needs any more: the files
// of loads that failed or were abandoned, webhook deliveries no batch
// loaded, and what writes that died left behind (.tmp-*, .upload-*,
// partial downloads). Successful loads remove their own files.
type Cleaner struct {
	Store     staging.Store // must be a staging.Sweeper (Dir and Bucket are)
	Temporal  client.Client // lists the runs still open
	TaskQueue string
	Now       func() time.Time // default time.Now
	// Metrics gets the bytes left in staging after a complete pass.
	Metrics *metrics.Metrics
}

// now is c.Now, or the clock.
func (c *Cleaner) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// OpenRun is a workflow run still open on the task queue.
type OpenRun struct {
	WorkflowID, RunID, Type string
	Start                   time.Time
}

// CleanupProgress is the heartbeat of a clean-up.
type CleanupProgress struct {
	Removed int
}

// CleanStaging removes what no open or recent workflow references and
// is older than the retention. It lists the open runs before it looks at
// a file, so a run that starts later has only files newer than the
// cutoff. Removing is idempotent: a retry finds less to remove.
func (c *Cleaner) CleanStaging(ctx context.Context, in payload.CleanupInput) (payload.CleanupResult, error) {
	sw, ok := c.Store.(staging.Sweeper)
	if !ok {
		return payload.CleanupResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("staging store %T cannot be swept", c.Store), payload.ErrTypeCleanup, nil)
	}
	if in.Retention == 0 {
		in.Retention = DefaultStagingRetention
	}
	if in.Retention < MinStagingRetention {
		return payload.CleanupResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("retention %s is below the minimum %s", in.Retention, MinStagingRetention), payload.ErrTypeCleanup, nil)
	}
	open, err := c.openRuns(ctx)
	if err != nil {
		return payload.CleanupResult{}, err
	}
	rule := newSweepRule(c.now().Add(-in.Retention), open)
	// Pass 1: every load's newest file, so a load goes whole or not at
	// all. Memory grows with loads, not files.
	// Walking a large bucket takes a while: heartbeat on every file (the
	// SDK sends at most one a throttle interval), so a slow bucket is
	// not taken for a dead worker, and a walk that stalls is noticed.
	beat := func(removed int) {
		activity.RecordHeartbeat(ctx, CleanupProgress{Removed: removed})
	}
	err = sw.Walk(ctx, func(e staging.Entry) error {
		beat(0)
		if !rule.observe(e) {
			return errTooManyLoads
		}
		return nil
	})
	if errors.Is(err, errTooManyLoads) {
		return payload.CleanupResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("staging holds more than %d loads; remove old ones with a bucket lifecycle rule or by hand (see README)", maxCleanupLoads), payload.ErrTypeCleanup, err)
	}
	if err != nil {
		return payload.CleanupResult{}, fmt.Errorf("clean staging: %w", err)
	}
	// Pass 2: remove what the rule selects, until the bound on files or
	// cleanupMargin before the activity's deadline: one object a request
	// on a bucket, 100,000 can take longer than the activity's hour, and
	// a pass cut short by its timeout would fail and start over.
	var stopAt time.Time
	if d := activity.GetInfo(ctx).Deadline; !d.IsZero() {
		stopAt = d.Add(-cleanupMargin)
	}
	res, err := c.remove(ctx, sw, rule, stopAt)
	if err != nil {
		return res, err
	}
	if !res.More { // a cut-short pass saw only part of what stays
		c.Metrics.SetStagedBytes(res.KeptBytes)
	}
	activity.GetLogger(ctx).Info("staging cleaned", "cutoff", res.Cutoff, "files", res.Files, "bytes", res.Bytes, "loads", res.Loads,
		"deliveries", res.Deliveries, "temporary", res.Temporary, "kept_running", res.KeptRunning,
		"kept_recent", res.KeptRecent, "kept_unknown", res.KeptUnknown, "more", res.More)
	return res, nil
}

// remove is the clean-up's second pass: it removes what rule selects, at
// most maxCleanupFiles files and, when stopAt is set, none after it; a
// pass cut short says More.
func (c *Cleaner) remove(ctx context.Context, sw staging.Sweeper, rule *sweepRule, stopAt time.Time) (payload.CleanupResult, error) {
	res := payload.CleanupResult{Cutoff: rule.cutoff}
	loads := map[string]bool{}
	log := activity.GetLogger(ctx)
	err := sw.Walk(ctx, func(e staging.Entry) error {
		activity.RecordHeartbeat(ctx, CleanupProgress{Removed: res.Files})
		d := rule.decide(e)
		switch d.kind {
		case keptRunning:
			res.KeptRunning++
			res.KeptBytes += e.Size
			return nil
		case keptRecent:
			res.KeptRecent++
			res.KeptBytes += e.Size
			return nil
		case keptUnknown:
			res.KeptUnknown++
			res.KeptBytes += e.Size
			return nil
		}
		if res.Files == maxCleanupFiles || (!stopAt.IsZero() && c.now().After(stopAt)) {
			res.More = true
			return errEnough
		}
		if err := sw.RemoveEntry(ctx, e); err != nil {
			return err
		}
		res.Files++
		res.Bytes += e.Size
		switch d.kind {
		case removedLoad:
			if !loads[d.load] {
				loads[d.load] = true
				res.Loads++
				if len(res.LoadIDs) < payload.CleanupLoadIDs {
					res.LoadIDs = append(res.LoadIDs, d.load)
				}
				log.Info("removing staged files of a finished or abandoned load", "load", d.load, "newest_file", rule.newest[d.load])
			}
		case removedDelivery:
			res.Deliveries++
		case removedTemp:
			res.Temporary++
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return res, fmt.Errorf("clean staging (removed %d files so far): %w", res.Files, err)
	}
	return res, nil
}

var (
	errTooManyLoads = errors.New("too many loads")
	errEnough       = errors.New("removal bound reached")
)

// openRuns lists the workflow runs still open on the task queue, every
// page of them. An incomplete list is an error: nothing is removed when
// it is not known what is running.
func (c *Cleaner) openRuns(ctx context.Context) ([]OpenRun, error) {
	if strings.ContainsAny(c.TaskQueue, `'"\`) {
		return nil, temporal.NewNonRetryableApplicationError("task queue "+c.TaskQueue+" cannot be quoted in a visibility query", payload.ErrTypeCleanup, nil)
	}
	query := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running'", c.TaskQueue)
	var runs []OpenRun
	var token []byte
	for {
		resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list open workflows: %w", err)
		}
		for _, e := range resp.Executions {
			runs = append(runs, OpenRun{WorkflowID: e.Execution.WorkflowId, RunID: e.Execution.RunId, Type: e.Type.Name, Start: e.StartTime.AsTime()})
		}
		if len(runs) > maxOpenRuns {
			return nil, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("more than %d open workflows on %s; not cleaning staging while so much runs", maxOpenRuns, c.TaskQueue), payload.ErrTypeCleanup, nil)
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return runs, nil
		}
	}
}

// What the rule decides for one file.
type decisionKind int

const (
	keptRunning decisionKind = iota
	keptRecent
	keptUnknown
	removedLoad
	removedDelivery
	removedTemp
)

type decision struct {
	kind decisionKind
	load string // for a load's file
}

// sweepRule is the selection rule. Staged files follow the key layout of
// staging and activities: a load's files live under loads/<load id>/ and
// exports/<load id>/ (chunks, quarantine files, manifest, the export file
// and its partial download) and go together, once the newest of them is
// older than the cutoff and no open run can be using the load; a webhook
// delivery (webhooks/<name>) goes once older than the cutoff unless a
// batch that may hold it is still open; a temporary file at the root or
// among the deliveries goes once older than the cutoff (no write lasts
// that long). Anything else is not ktpipe's and stays.
type sweepRule struct {
	cutoff   time.Time
	open     []OpenRun
	prefixes []string             // load id prefixes of the open runs
	newest   map[string]time.Time // load id → its newest file
	pending  map[string]bool      // load ids waiting for the compaction (see PendingKey)
}

func newSweepRule(cutoff time.Time, open []OpenRun) *sweepRule {
	r := &sweepRule{cutoff: cutoff, open: open, newest: map[string]time.Time{}, pending: map[string]bool{}}
	for _, o := range open {
		r.prefixes = append(r.prefixes, LoadIDPrefix(o.WorkflowID, o.RunID))
	}
	return r
}

// loadOf returns the load id a key belongs to, if any.
func loadOf(key string) (string, bool) {
	top, rest, ok := strings.Cut(key, "/")
	if !ok || (top != "loads" && top != "exports") {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "/")
	return id, ok && id != ""
}

// pendingOf returns the load id whose compaction mark key is (PendingKey).
func pendingOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, pendingDir+"/")
	if !ok {
		return "", false
	}
	id, name, ok := strings.Cut(rest, "/")
	return id, ok && id != "" && name == "load.json"
}

// observe records a file for pass 1; false when too many loads.
func (r *sweepRule) observe(e staging.Entry) bool {
	if id, ok := pendingOf(e.Key); ok {
		r.pending[id] = true
		return true
	}
	id, ok := loadOf(e.Key)
	if !ok {
		return true
	}
	t, seen := r.newest[id]
	if !seen && len(r.newest) == maxCleanupLoads {
		return false
	}
	if !seen || e.ModTime.After(t) {
		r.newest[id] = e.ModTime
	}
	return true
}

func (r *sweepRule) decide(e staging.Entry) decision {
	if id, ok := loadOf(e.Key); ok {
		switch {
		case r.loadRunning(id) || r.pending[id]:
			return decision{kind: keptRunning, load: id}
		case !r.newest[id].Before(r.cutoff) || !e.ModTime.Before(r.cutoff):
			return decision{kind: keptRecent, load: id}
		}
		return decision{kind: removedLoad, load: id}
	}
	if _, ok := pendingOf(e.Key); ok {
		// The compaction removes a mark once it committed the load.
		return decision{kind: keptRunning}
	}
	if !e.ModTime.Before(r.cutoff) {
		return decision{kind: keptRecent}
	}
	if strings.HasPrefix(e.Key, "webhooks/") && !staging.IsTemp(e.Key) {
		for _, o := range r.open {
			if o.Type == "WebhookBatch" && o.Start.Before(e.ModTime.Add(deliveryMargin)) {
				return decision{kind: keptRunning}
			}
		}
		return decision{kind: removedDelivery}
	}
	// Temporary files only where ktpipe writes: the root (a bucket
	// store's uploads) and the delivery directory; a load's are part of
	// its load. A .tmp-* file elsewhere is someone else's.
	if top, _, nested := strings.Cut(e.Key, "/"); staging.IsTemp(e.Key) && (!nested || top == "webhooks") {
		return decision{kind: removedTemp}
	}
	return decision{kind: keptUnknown}
}

// loadRunning reports whether an open run may use load id: workflows
// name their loads after their own id and run (see LoadIDPrefix), and a
// replay from staging carries the load id in its workflow id.
func (r *sweepRule) loadRunning(id string) bool {
	for i, o := range r.open {
		if strings.HasPrefix(id, r.prefixes[i]) || strings.Contains(o.WorkflowID, id) {
			return true
		}
	}
	return false
}

// LoadIDPrefix is how the load ids of a workflow run begin: workflows
// name each load <workflow id>-<first 8 characters of the run id>-<part>,
// made staging-safe by payload.LoadID, as the workflows do.
func LoadIDPrefix(workflowID, runID string) string {
	return payload.LoadID(workflowID, runID[:min(8, len(runID))], "")
}
