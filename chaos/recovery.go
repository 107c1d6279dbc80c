package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// activity is one activity of one workflow run.
type activity struct {
	workflowID, runID, id, typ string
}

// runningActivities lists the activities a worker whose identity starts
// with worker ("": any) has started and not finished, across ktpipe's
// open workflows. Asked right after a kill, about the dead worker, it
// names exactly what the kill interrupted: a dead worker completes
// nothing, and its successor needs seconds to start.
func (s *stack) runningActivities(ctx context.Context, worker string) ([]activity, error) {
	wfs, err := s.ctl.ListWorkflows(ctx, "Running", 200)
	if err != nil {
		return nil, err
	}
	var out []activity
	for _, w := range wfs {
		desc, err := s.tc.DescribeWorkflow(ctx, w.ID, w.RunID)
		if err != nil {
			continue // closed meanwhile
		}
		d := desc.RawResponse
		for _, pa := range d.PendingActivities {
			if pa.State == enumspb.PENDING_ACTIVITY_STATE_STARTED && strings.HasPrefix(pa.LastWorkerIdentity, worker) {
				out = append(out, activity{w.ID, w.RunID, pa.ActivityId, pa.ActivityType.GetName()})
			}
		}
	}
	return out, nil
}

// resumedAt tells whether an activity interrupted at kill runs again (a
// new attempt started after kill), has finished, or its workflow closed;
// at is when, as precisely as Temporal says.
func (s *stack) resumedAt(ctx context.Context, a activity, kill time.Time) (at time.Time, ok bool) {
	desc, err := s.tc.DescribeWorkflow(ctx, a.workflowID, a.runID)
	if err != nil {
		return time.Time{}, false // the dev server may be away; ask again
	}
	d := desc.RawResponse
	if d.WorkflowExecutionInfo.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return time.Now(), true
	}
	for _, pa := range d.PendingActivities {
		if pa.ActivityId != a.id {
			continue
		}
		if started := pa.LastStartedTime.AsTime(); pa.State == enumspb.PENDING_ACTIVITY_STATE_STARTED && started.After(kill) {
			return started, true
		}
		return time.Time{}, false
	}
	return time.Now(), true // no longer pending: a new attempt finished it
}

// waitResumed waits, at most bound after kill, until every interrupted
// activity runs again; it returns when the last one did and those that
// did not.
func (s *stack) waitResumed(ctx context.Context, acts []activity, kill time.Time, bound time.Duration) (time.Duration, []activity) {
	var last time.Duration
	left := acts
	for len(left) > 0 && time.Since(kill) < bound && ctx.Err() == nil {
		var still []activity
		for _, a := range left {
			at, ok := s.resumedAt(ctx, a, kill)
			if !ok {
				still = append(still, a)
				continue
			}
			last = max(last, at.Sub(kill))
		}
		if left = still; len(left) > 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	return last, left
}

// describe names activities by type, e.g. "StageChunk×2, DownloadExport".
func describe(acts []activity) string {
	if len(acts) == 0 {
		return "nothing"
	}
	n := map[string]int{}
	var order []string
	for _, a := range acts {
		if n[a.typ] == 0 {
			order = append(order, a.typ)
		}
		n[a.typ]++
	}
	parts := make([]string, len(order))
	for i, t := range order {
		parts[i] = t
		if n[t] > 1 {
			parts[i] += fmt.Sprintf("×%d", n[t])
		}
	}
	return strings.Join(parts, ", ")
}

// histories is what the workflow histories of the soak say, read once
// everything has closed.
type histories struct {
	completions []time.Time               // every activity completion, in time order
	workflows   map[string]map[string]int // workflow type → final status → runs
	retries     map[string]int            // activity type → attempts beyond the first that completed or finally failed
}

// readHistories reads the history of every workflow run on the task queue.
func (s *stack) readHistories(ctx context.Context) (histories, error) {
	h := histories{workflows: map[string]map[string]int{}, retries: map[string]int{}}
	var token []byte
	for {
		resp, err := s.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("TaskQueue = '%s'", taskQueue), PageSize: 500, NextPageToken: token})
		if err != nil {
			return h, fmt.Errorf("list workflows: %w", err)
		}
		for _, e := range resp.Executions {
			typ := e.Type.GetName()
			if h.workflows[typ] == nil {
				h.workflows[typ] = map[string]int{}
			}
			h.workflows[typ][statusName(e.Status)]++
			if err := s.readHistory(ctx, e.Execution.WorkflowId, e.Execution.RunId, &h); err != nil {
				return h, err
			}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	sort.Slice(h.completions, func(i, j int) bool { return h.completions[i].Before(h.completions[j]) })
	return h, nil
}

func (s *stack) readHistory(ctx context.Context, id, runID string, h *histories) error {
	types := map[int64]string{}
	it := s.tc.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return fmt.Errorf("history of %s: %w", id, err)
		}
		switch ev.EventType {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			types[ev.EventId] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			// Only an activity's last attempt is recorded; its number says
			// how many came before.
			if a := ev.GetActivityTaskStartedEventAttributes(); a.Attempt > 1 {
				h.retries[types[a.ScheduledEventId]] += int(a.Attempt - 1)
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			h.completions = append(h.completions, ev.EventTime.AsTime())
		}
	}
	return nil
}

// progressAfter is how long after t the first activity completed (false:
// none did).
func (h histories) progressAfter(t time.Time) (time.Duration, bool) {
	i := sort.Search(len(h.completions), func(i int) bool { return h.completions[i].After(t) })
	if i == len(h.completions) {
		return 0, false
	}
	return h.completions[i].Sub(t), true
}

func statusName(s enumspb.WorkflowExecutionStatus) string {
	return strings.ToLower(s.String())
}
