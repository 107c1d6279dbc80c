package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// DefaultCleanupInterval is how often the clean-up schedule runs: files
// only become removable after days, so once a day is plenty.
const DefaultCleanupInterval = 24 * time.Hour

// CleanupInput configures a clean-up of the staging store.
type CleanupInput struct {
	// Retention: staged files modified more recently are kept (default
	// activities.DefaultStagingRetention, 7 days).
	Retention time.Duration `json:"retention,omitempty"`
}

// Cleanup removes staged files that no open or recent workflow
// references and reports what it removed. Its own schedule runs it daily
// (ktpipe schedule apply). A load's own success path removes its files;
// this catches the rest: failed and abandoned loads, undelivered webhook
// batches, and what killed writes left behind.
func Cleanup(ctx workflow.Context, in CleanupInput) (payload.CleanupResult, error) {
	var res payload.CleanupResult
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (payload.CleanupResult, error) { return res, nil }); err != nil {
		return res, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, KindKey.ValueSet("cleanup")); err != nil {
		return res, err
	}
	details(ctx, "staging clean-up", "removes staged files older than "+in.Retention.String()+" (0s: the default) that no open workflow uses")
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// One pass over a large bucket takes minutes; it heartbeats
		// every 1,000 files it looks at.
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
			// The next day's run tries again; a clean-up that keeps
			// failing shows as failed workflows, not a silent retry.
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{payload.ErrTypeCleanup},
		},
	})
	// A pass stops at its bounds (files, and time before its deadline)
	// and says More: up to cleanupPasses a run, so a large backlog is
	// removed within the day rather than a pass a day.
	passes := 1
	if workflow.GetVersion(ctx, cleanupPassesChange, workflow.DefaultVersion, 1) == 1 {
		passes = cleanupPasses
	}
	for pass := 0; pass < passes; pass++ {
		var r payload.CleanupResult
		if err := workflow.ExecuteActivity(actx, payload.CleanStaging, payload.CleanupInput{Retention: in.Retention}).Get(ctx, &r); err != nil {
			return res, fmt.Errorf("clean staging (pass %d): %w", pass+1, err)
		}
		res = addPass(res, r)
		if !r.More || r.Files == 0 {
			// Done, or a pass whose look at the store took its time:
			// another would only look again. The next run goes on.
			break
		}
	}
	workflow.GetLogger(ctx).Info("staging cleaned", "files", res.Files, "bytes", res.Bytes, "loads", res.Loads,
		"deliveries", res.Deliveries, "temporary", res.Temporary, "more", res.More)
	return res, nil
}

// cleanupPasses bounds the clean-up's passes a run: each at most an hour
// and maxCleanupFiles (activities) files.
const cleanupPasses = 4

// cleanupPassesChange versions the passes: runs begun before ran one.
const cleanupPassesChange = "cleanup-passes"

// addPass adds a pass's removals to the run's; what was kept, the cutoff
// and whether more is left are the last pass's. A load whose files two
// passes removed counts in both.
func addPass(run, pass payload.CleanupResult) payload.CleanupResult {
	pass.Files += run.Files
	pass.Bytes += run.Bytes
	pass.Loads += run.Loads
	pass.Deliveries += run.Deliveries
	pass.Temporary += run.Temporary
	ids := slices.Concat(run.LoadIDs, pass.LoadIDs)
	pass.LoadIDs = ids[:min(len(ids), payload.CleanupLoadIDs)]
	return pass
}
