package workflows

import (
	"fmt"
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
	if err := workflow.ExecuteActivity(actx, payload.CleanStaging, payload.CleanupInput{Retention: in.Retention}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("clean staging: %w", err)
	}
	workflow.GetLogger(ctx).Info("staging cleaned", "files", res.Files, "bytes", res.Bytes, "loads", res.Loads,
		"deliveries", res.Deliveries, "temporary", res.Temporary, "more", res.More)
	return res, nil
}
