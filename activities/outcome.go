package activities

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/payload"
)

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
