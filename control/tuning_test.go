package control_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/workflows"
)

// KTPIPE_CONCURRENCY reaches the workflows it starts (chunk stages in
// flight), not only the worker's activity slots.
func TestConcurrencyReachesTheWorkflows(t *testing.T) {
	var inputs []any
	cl := &mocks.Client{}
	run := &mocks.WorkflowRun{}
	run.On("GetID").Return("wf")
	run.On("GetRunID").Return("run")
	cl.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(run, nil).
		Run(func(args mock.Arguments) { inputs = append(inputs, args.Get(3)) })
	cl.On("Close").Return()
	cl.On("DescribeWorkflow", mock.Anything, mock.Anything, mock.Anything).Return(nil, serviceerror.NewNotFound("none"))
	var out, errOut bytes.Buffer
	c := &control.CLI{
		Env:    envconfig.MapLookuper(map[string]string{"KTPIPE_CONCURRENCY": "7"}),
		Stdout: &out, Stderr: &errOut,
		Dial: func(config.Temporal) (client.Client, error) { return cl, nil },
	}
	for _, args := range [][]string{
		{"backfill", "--since", "2d"},
		{"export", "--since", "1d"},
		{"replay", "--since", "1d"},
		{"reconcile", "--since", "1d"},
		{"replay", "--quarantine"},
	} {
		if code := c.Run(context.Background(), args); code != control.ExitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
	}
	if len(inputs) != 5 {
		t.Fatalf("%d workflows started", len(inputs))
	}
	for _, in := range inputs {
		var got workflows.Tuning
		switch in := in.(type) {
		case workflows.BackfillInput:
			got = in.Tuning
		case workflows.ExportLoadInput:
			got = in.Tuning
		case workflows.ReplayInput:
			got = in.Tuning
		case workflows.ReconcileInput:
			got = in.Tuning
		case workflows.QuarantineReplayInput:
			got = in.Tuning
		default:
			t.Fatalf("input %T", in)
		}
		if got.Concurrency != 7 {
			t.Errorf("%T: Tuning.Concurrency %d, want 7 from KTPIPE_CONCURRENCY", in, got.Concurrency)
		}
	}
}
