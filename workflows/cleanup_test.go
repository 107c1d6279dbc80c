package workflows_test

import (
	"context"
	"fmt"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// A clean-up pass cut short at its bounds says More: the run passes again,
// up to its bound on passes, and its result sums what the passes removed
// with the last pass's view of what stays.
func TestCleanupPassesAgainWhileMoreIsLeft(t *testing.T) {
	for _, tt := range []struct {
		name       string
		more       int // passes that say more is left
		idle       int // the pass from which none removes a file (0: every pass removes)
		before     bool
		passes     int
		files      int
		stillMore  bool
		reportedID int
	}{
		{name: "done at once", more: 0, passes: 1, files: 30},
		{name: "2 cut short", more: 2, passes: 3, files: 90, reportedID: 50},
		{name: "9 cut short", more: 9, passes: 4, files: 120, stillMore: true, reportedID: 50},
		{name: "idle passes", more: 9, idle: 2, passes: 2, files: 30, stillMore: true},
		{name: "a run begun before", more: 9, before: true, passes: 1, files: 30, stillMore: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.RegisterWorkflow(workflows.Cleanup)
			if tt.before {
				env.OnGetVersion("cleanup-passes", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
			}
			n := 0
			env.RegisterActivityWithOptions(func(context.Context, payload.CleanupInput) (payload.CleanupResult, error) {
				n++
				if tt.idle > 0 && n >= tt.idle {
					return payload.CleanupResult{KeptRecent: 100 - n, More: true}, nil
				}
				ids := make([]string, 30)
				for i := range ids {
					ids[i] = fmt.Sprintf("pass%d-%d", n, i)
				}
				return payload.CleanupResult{Files: 30, Loads: 30, LoadIDs: ids, KeptRecent: 100 - n, More: n <= tt.more}, nil
			}, activity.RegisterOptions{Name: payload.CleanStaging})
			env.ExecuteWorkflow(workflows.Cleanup, workflows.CleanupInput{})
			var res payload.CleanupResult
			if err := env.GetWorkflowResult(&res); err != nil {
				t.Fatal(err)
			}
			want := min(tt.reportedID, 30*tt.passes)
			if tt.reportedID == 0 {
				want = 30
			}
			if n != tt.passes || res.Files != tt.files || res.Loads != tt.files || res.More != tt.stillMore || res.KeptRecent != 100-n || len(res.LoadIDs) != want || res.LoadIDs[0] != "pass1-0" {
				t.Errorf("%d passes, result %+v; want %d passes, %d files, more %v, the last pass's kept, %d ids from the first",
					n, res, tt.passes, tt.files, tt.stillMore, want)
			}
		})
	}
}
