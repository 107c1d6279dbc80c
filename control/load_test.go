package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/mock"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/workflows"
)

// fakeTemporal records the workflows the CLI starts; prior is the status
// of an earlier run under any id (0: none).
type fakeTemporal struct {
	cl      *mocks.Client
	ids     []string
	summary []string
	inputs  []any
	dialled int
}

func newFake(prior enumspb.WorkflowExecutionStatus) *fakeTemporal {
	f := &fakeTemporal{cl: &mocks.Client{}}
	run := &mocks.WorkflowRun{}
	run.On("GetID").Return("wf")
	run.On("GetRunID").Return("new-run")
	f.cl.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(run, nil).
		Run(func(args mock.Arguments) {
			f.ids = append(f.ids, args.Get(1).(client.StartWorkflowOptions).ID)
			f.summary = append(f.summary, args.Get(1).(client.StartWorkflowOptions).StaticSummary)
			f.inputs = append(f.inputs, args.Get(3))
		})
	f.cl.On("Close").Return()
	if prior == 0 {
		f.cl.On("DescribeWorkflow", mock.Anything, mock.Anything, mock.Anything).Return(nil, serviceerror.NewNotFound("none"))
	} else {
		start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		reload := func(id string) bool { return strings.Contains(id, "-reload-") }
		f.cl.On("DescribeWorkflow", mock.Anything, mock.MatchedBy(reload), mock.Anything).Return(nil, serviceerror.NewNotFound("none"))
		f.cl.On("DescribeWorkflow", mock.Anything, mock.Anything, mock.Anything).Return(&client.WorkflowExecutionDescription{RawResponse: &workflowservice.DescribeWorkflowExecutionResponse{
			WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Execution: &commonpb.WorkflowExecution{RunId: "old-run"}, Status: prior,
				StartTime: timestamppb.New(start), CloseTime: timestamppb.New(start.Add(time.Minute))}}}, nil)
	}
	return f
}

func (f *fakeTemporal) run(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &control.CLI{Env: envconfig.MapLookuper(env), Stdout: &out, Stderr: &errOut,
		Dial: func(config.Temporal) (client.Client, error) { f.dialled++; return f.cl, nil }}
	code := c.Run(context.Background(), args)
	return code, out.String() + errOut.String()
}

// Flags override the environment, also to turn a default off, and every
// loading command takes the same format flags.
func TestFlagsOverrideTheEnvironment(t *testing.T) {
	env := map[string]string{"KTPIPE_EXPORT_GZIP": "true", "KTPIPE_EXPORT_FORMAT": "json"}
	f := newFake(0)
	for _, args := range [][]string{
		{"export", "--since", "1d", "--gzip=false", "--format", "csv"},
		{"backfill", "--since", "2d", "--gzip=false", "--format", "csv"},
	} {
		if code, out := f.run(t, env, args...); code != control.ExitOK {
			t.Fatalf("%v: exit %d %s", args, code, out)
		}
	}
	exp, bf := f.inputs[0].(workflows.ExportLoadInput), f.inputs[1].(workflows.BackfillInput)
	if exp.Gzip || exp.Format != "csv" || bf.Gzip || bf.Format != "csv" {
		t.Fatalf("export %s gzip %v, backfill %s gzip %v; want csv without gzip from the flags", exp.Format, exp.Gzip, bf.Format, bf.Gzip)
	}
	// Without the flags, the environment.
	if code, out := f.run(t, env, "export", "--since", "1d"); code != control.ExitOK || !f.inputs[2].(workflows.ExportLoadInput).Gzip {
		t.Fatalf("exit %d %s: %+v", code, out, f.inputs[2])
	}
}

// A bad flag is exit 2 with nothing dialled or started.
func TestBadFormatStartsNothing(t *testing.T) {
	f := newFake(0)
	code, out := f.run(t, nil, "export", "--since", "1d", "--format", "xml")
	if code != control.ExitUsage || f.dialled != 0 || len(f.ids) != 0 || !strings.Contains(out, `--format "xml"`) {
		t.Fatalf("exit %d, dialled %d, started %v: %s", code, f.dialled, f.ids, out)
	}
}

// The workflow id names what changes the work: another format or window
// is another workflow, never the earlier run's result.
func TestWorkflowIDsNameTheParameters(t *testing.T) {
	f := newFake(0)
	for _, args := range [][]string{
		{"backfill", "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-02T00:00:00Z", "--format", "ndjson"},
		{"backfill", "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-02T00:00:00Z", "--format", "csv"},
		{"backfill", "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-02T00:00:00Z", "--format", "csv", "--window", "6h"},
		{"export", "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-02T00:00:00Z", "--format", "ndjson"},
		{"export", "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-02T00:00:00Z", "--format", "ndjson", "--gzip=false"},
	} {
		if code, out := f.run(t, nil, args...); code != control.ExitOK {
			t.Fatalf("%v: exit %d %s", args, code, out)
		}
	}
	seen := map[string]bool{}
	for _, id := range f.ids {
		if seen[id] {
			t.Fatalf("two different loads got id %s: %v", id, f.ids)
		}
		seen[id] = true
	}
	if want := "-backfill-20261101T000000Z-20261102T000000Z-csv-gz-w6h"; !strings.HasSuffix(f.ids[2], want) {
		t.Fatalf("id %s, want it to end %s", f.ids[2], want)
	}
	// What the UI's list shows of it.
	if want := "backfill 2026-11-01 00:00 → 2026-11-02 00:00 UTC in 6h0m0s windows (csv+gzip)"; f.summary[2] != want {
		t.Fatalf("summary %q, want %q", f.summary[2], want)
	}
}

// A load whose run completed is not started again, and the CLI says so
// (not the earlier result as a new one); --reload starts a new one.
func TestCompletedLoadIsReportedNotRepeated(t *testing.T) {
	f := newFake(enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)
	code, out := f.run(t, nil, "export", "--since", "1d", "--format", "csv")
	if code != control.ExitOK || len(f.ids) != 0 || !strings.Contains(out, "already loaded by") || !strings.Contains(out, "run old-run") ||
		!strings.Contains(out, "pass --reload") || strings.HasPrefix(out, "started") {
		t.Fatalf("exit %d, started %v: %s", code, f.ids, out)
	}
	code, out = f.run(t, nil, "-o", "json", "backfill", "--since", "1d")
	var res control.LoadOutcome
	if err := json.Unmarshal([]byte(out), &res); code != control.ExitOK || err != nil || res.Outcome != "already-loaded" || res.RunID != "old-run" {
		t.Fatalf("exit %d %v: %s", code, err, out)
	}
	code, out = f.run(t, nil, "backfill", "--since", "1d", "--reload")
	if code != control.ExitOK || len(f.ids) != 1 || !strings.Contains(f.ids[0], "-reload-") || !strings.HasPrefix(out, "started") {
		t.Fatalf("reload: exit %d, started %v: %s", code, f.ids, out)
	}
}

// A --wait ends at --wait-timeout, exit 1, naming the workflow, which
// goes on: no worker may be running it.
func TestWaitEndsAtItsTimeout(t *testing.T) {
	f := newFake(0)
	run := &mocks.WorkflowRun{}
	run.On("GetID").Return("wf")
	run.On("GetRunID").Return("new-run")
	run.On("Get", mock.Anything, mock.Anything).Return(func(ctx context.Context, _ interface{}) error { <-ctx.Done(); return ctx.Err() })
	f.cl = &mocks.Client{}
	f.cl.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(run, nil)
	f.cl.On("DescribeWorkflow", mock.Anything, mock.Anything, mock.Anything).Return(nil, serviceerror.NewNotFound("none"))
	f.cl.On("Close").Return()
	code, out := f.run(t, nil, "export", "--since", "1d", "--wait", "--wait-timeout", "1s")
	if code != control.ExitFailed || !strings.Contains(out, "-ndjson-gz: still running after --wait-timeout 1s; the workflow goes on") {
		t.Fatalf("exit %d, want %d naming the timeout:\n%s", code, control.ExitFailed, out)
	}
	if code, out := f.run(t, nil, "export", "--since", "1d", "--wait-timeout", "0s"); code != control.ExitUsage || !strings.Contains(out, "--wait-timeout 0s: between 1s and 720h") {
		t.Fatalf("a zero timeout: exit %d\n%s", code, out)
	}
}
