package workflows_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// An export that never ends (running forever: the contract promises no
// end) is given up 6 hours after its creation and replaced by a new one
// with a new key, like a failed one; the third stuck export fails the
// workflow through its own failure path, naming the export, its status
// and the bound. The wait never outlasts 3 × 6h by more than the polls.
func TestStuckExportIsReplacedAfterTheBound(t *testing.T) {
	for _, tc := range []struct {
		name      string
		completes string // the export that completes ("": none)
		exports   int
	}{
		{"none ends", "", 3},
		{"the second completes", "exp_g1", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			var keys []string
			env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in payload.CreateExportInput) (payload.Export, error) {
					keys = append(keys, in.IdempotencyKey)
					e := export(payload.StatusQueued)
					e.ID = "exp_g" + in.IdempotencyKey[len(in.IdempotencyKey)-1:]
					return e, nil
				})
			env.OnActivity(payload.GetExport, mock.Anything, mock.Anything).Return(
				func(_ context.Context, id string) (payload.Export, error) {
					e := export(payload.StatusRunning)
					if id == tc.completes {
						e = export(payload.StatusCompleted)
					}
					e.ID = id
					return e, nil
				})
			if tc.completes != "" {
				happyLoad(env)
			}
			// Without the bound the polls never end: cancel then, so the
			// test fails rather than hangs.
			env.RegisterDelayedCallback(env.CancelWorkflow, 24*time.Hour)
			start := env.Now()
			env.ExecuteWorkflow(workflows.ExportLoad, window)
			took := env.Now().Sub(start)

			if len(keys) != tc.exports || keys[0] == keys[1] {
				t.Fatalf("idempotency keys %v: want %d, each new", keys, tc.exports)
			}
			if tc.completes != "" {
				var res workflows.ExportLoadResult
				if err := env.GetWorkflowResult(&res); err != nil || res.ExportID != tc.completes {
					t.Fatalf("result %+v, err %v: want %s loaded", res, err, tc.completes)
				}
				return
			}
			err := env.GetWorkflowError()
			var appErr *temporal.ApplicationError
			for e := err; errors.As(e, &appErr) && appErr.Type() != payload.ErrTypeAPI; e = appErr.Unwrap() {
			}
			if appErr == nil || appErr.Type() != payload.ErrTypeAPI || !appErr.NonRetryable() {
				t.Fatalf("err %v: want a non-retryable %s", err, payload.ErrTypeAPI)
			}
			for _, want := range []string{"exp_g2 running", "6h0m0s", "load default-test-workflow-id-", "retry: Replay"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err %q: want it to say %q", err, want)
				}
			}
			if took < 18*time.Hour || took > 18*time.Hour+3*time.Minute {
				t.Errorf("gave up after %s, want 3 × 6h and at most a poll more each", took)
			}
		})
	}
}

// A run whose history polled past the bound before it came keeps
// polling, as it ran: the bound is versioned.
func TestExportBegunBeforeTheWaitBoundKeepsPolling(t *testing.T) {
	env := newEnv(t)
	env.OnGetVersion("export-wait-bound", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusQueued), nil).Once()
	env.OnActivity(payload.GetExport, mock.Anything, "exp_1").Return(export(payload.StatusRunning), nil)
	env.RegisterDelayedCallback(env.CancelWorkflow, 20*time.Hour)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	var canceled *temporal.CanceledError
	if err := env.GetWorkflowError(); !errors.As(err, &canceled) {
		t.Fatalf("err %v, want it still polling the first export when canceled after 20h", err)
	}
}
