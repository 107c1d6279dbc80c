package control_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"

	"github.com/ktpipe/ktpipe/control"
)

// When the schedule's own run is still going (it fired on the hour),
// a trigger under overlap skip would start nothing; TriggerSchedule
// answers with the running pull instead of waiting for one that never
// comes (ktpipe-local failed this way when its run spanned the hour).
func TestTriggerFollowsTheRunningScheduledPull(t *testing.T) {
	h := &mocks.ScheduleHandle{}
	running := &client.ScheduleDescription{Info: client.ScheduleInfo{
		RunningWorkflows: []client.ScheduleWorkflowExecution{{WorkflowID: "ktpipe-incremental-pull-2026-11-29T14:00:00Z"}},
	}}
	h.On("Describe", mock.Anything).Return(running, nil)
	sc := &mocks.ScheduleClient{}
	sc.On("GetHandle", mock.Anything, mock.Anything).Return(h)
	cl := &mocks.Client{}
	cl.On("ScheduleClient").Return(sc)
	c := &control.Control{Client: cl, TaskQueue: "ktpipe"}
	id, err := c.TriggerSchedule(context.Background())
	if err != nil || id != "ktpipe-incremental-pull-2026-11-29T14:00:00Z" {
		t.Fatalf("got %q, %v; want the running scheduled pull", id, err)
	}
	if n := len(h.Calls); n != 2 {
		t.Fatalf("%d calls on the schedule handle, want 2 Describes and no Trigger", n)
	}
}
