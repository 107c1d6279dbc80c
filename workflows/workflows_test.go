package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// acts registers every activity under its name, with the signature
// payload.Activities gives it, and links none of the activities' clients;
// tests mock them by payload's name constants. An activity a test has
// not mocked panics (its method is the nil interface's).
var acts = &stubActivities{}

type stubActivities struct{ payload.Activities }

func ptr[T any](v T) *T { return &v }

func export(status string) payload.Export {
	e := payload.Export{ID: "exp_1", Status: status, Format: "ndjson", Compression: "none"}
	if status == payload.StatusCompleted {
		e.RowCount, e.SizeBytes, e.SHA256 = ptr(int64(10)), ptr(int64(100)), ptr("abc")
	}
	return e
}

var manifest = payload.Manifest{LoadID: "L", Records: 10, Rows: 9, Quarantined: 1, Chunks: []payload.Chunk{
	{Index: 0, Key: "loads/L/chunk-00000.ndjson", Rows: 5, MinDate: "2026-11-01", MaxDate: "2026-11-01"},
	{Index: 1, Key: "loads/L/chunk-00001.ndjson", QuarantineKey: "loads/L/quarantine-00001.ndjson", Rows: 4, Quarantined: 1, MinDate: "2026-11-01", MaxDate: "2026-11-02"},
}}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(acts)
	env.RegisterWorkflow(workflows.ExportLoad)
	env.RegisterWorkflow(workflows.IncrementalPull)
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env
}

// happyLoad mocks every step after the export completed.
func happyLoad(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity(payload.DownloadExport, mock.Anything, mock.Anything).Return(payload.DownloadResult{Key: "exports/L/exp_1.data", Bytes: 100}, nil)
	env.OnActivity(payload.SplitExport, mock.Anything, mock.Anything).Return(manifest, nil)
	happyTail(env)
}

// happyTail mocks the load tail every load shares (landLoad), all
// succeeding.
func happyTail(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.CheckLoad, mock.Anything, mock.Anything).Return(payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1}, nil)
	env.OnActivity(payload.CleanupLoad, mock.Anything, mock.Anything).Return(nil)
}

var window = workflows.ExportLoadInput{Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}

func TestExportLoadPollsWithDurableTimers(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusQueued), nil).Once()
	env.OnActivity(payload.GetExport, mock.Anything, "exp_1").Return(export(payload.StatusRunning), nil).Times(3)
	env.OnActivity(payload.GetExport, mock.Anything, "exp_1").Return(export(payload.StatusCompleted), nil).Once()
	happyLoad(env)
	var timers []time.Duration
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { timers = append(timers, d) })

	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// Polls back off 2s, 4s, 8s, 16s: waits are timers, not a busy loop.
	if got := timers; len(got) != 4 || got[0] != 2*time.Second || got[3] != 16*time.Second {
		t.Fatalf("timers %v", got)
	}
	var res workflows.ExportLoadResult
	env.GetWorkflowResult(&res)
	if res.ExportID != "exp_1" || res.Rows != 9 || res.Quarantined != 1 || res.Chunks != 2 || res.RowCount != 10 {
		t.Fatalf("result %+v", res)
	}
	v, err := env.QueryWorkflow(workflows.ProgressQuery)
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.ExportProgress
	v.Get(&p)
	if p.Phase != "done" || p.Polls != 4 || p.ChunksStaged != 2 {
		t.Fatalf("progress %+v", p)
	}
}

func TestFailedExportIsReplacedWithANewKey(t *testing.T) {
	env := newEnv(t)
	var keys []string
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.CreateExportInput) (payload.Export, error) {
			keys = append(keys, in.IdempotencyKey)
			return export(payload.StatusQueued), nil
		})
	env.OnActivity(payload.GetExport, mock.Anything, "exp_1").Return(export(payload.StatusFailed), nil).Once()
	env.OnActivity(payload.GetExport, mock.Anything, "exp_1").Return(export(payload.StatusCompleted), nil).Once()
	happyLoad(env)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] == keys[1] || !strings.HasSuffix(keys[1], "/g1") {
		t.Fatalf("idempotency keys %v: a failed export needs a new key", keys)
	}
}

func TestRetryableFailuresAreRetried(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusCompleted), nil)
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(errors.New("backend error")).Twice()
	happyLoad(env)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("two transient failures must be retried: %v", err)
	}
}

func TestNonRetryableErrorStopsAtOnce(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusCompleted), nil)
	env.OnActivity(payload.DownloadExport, mock.Anything, mock.Anything).Return(payload.DownloadResult{Key: "k"}, nil)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{}, nil)
	env.OnActivity(payload.SplitExport, mock.Anything, mock.Anything).Return(payload.Manifest{},
		temporal.NewNonRetryableApplicationError("source broken at record 7", payload.ErrTypeMalformed, nil)).Once()
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if err == nil || !errors.As(err, &appErr) || !strings.Contains(err.Error(), "record 7") {
		t.Fatalf("err %v", err)
	}
}

func TestCancelWhileWaitingForExport(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusQueued), nil)
	env.OnActivity(payload.GetExport, mock.Anything, mock.Anything).Return(export(payload.StatusRunning), nil).Maybe()
	env.RegisterDelayedCallback(env.CancelWorkflow, 30*time.Second)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	var canceled *temporal.CanceledError
	if err := env.GetWorkflowError(); !errors.As(err, &canceled) {
		t.Fatalf("err %v, want canceled", err)
	}
}

func TestEmptyWindowIsRefused(t *testing.T) {
	env := newEnv(t)
	env.ExecuteWorkflow(workflows.ExportLoad, workflows.ExportLoadInput{Since: window.Until, Until: window.Since})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("err %v", err)
	}
}

func pullResult(cursor string, more bool) payload.PullResult {
	return payload.PullResult{NextCursor: cursor, HasMore: more, Pages: 1, Manifest: manifest}
}

// startedActivities records the activities a workflow starts, in order.
// (AssertNotCalled on an activity that was never mocked asserts nothing:
// the test suite records calls only of mocked activities.)
func startedActivities(env *testsuite.TestWorkflowEnvironment) *[]string {
	var names []string
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		names = append(names, info.ActivityType.Name)
	})
	return &names
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

func TestPullAdvancesCheckpointOnlyAfterMerge(t *testing.T) {
	pull := func(mergeErr error) (*testsuite.TestWorkflowEnvironment, []string) {
		env := newEnv(t)
		started := startedActivities(env)
		env.OnActivity(payload.ReadCheckpoint, mock.Anything, workflows.DefaultCheckpointKey).Return("c0", nil)
		env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{}, nil)
		env.OnActivity(payload.PullPages, mock.Anything, mock.Anything).Return(pullResult("c1", false), nil)
		env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
		env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(mergeErr)
		env.OnActivity(payload.CheckLoad, mock.Anything, mock.Anything).Return(payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1}, nil).Maybe()
		env.OnActivity(payload.CleanupLoad, mock.Anything, mock.Anything).Return(nil).Maybe()
		env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil).Maybe()
		// Mocked, so that a wrong call is recorded rather than crashing
		// on a nil activity; the started list is what is asserted.
		env.OnActivity(payload.WriteCheckpoint, mock.Anything, mock.Anything).Return(nil).Maybe()
		env.ExecuteWorkflow(workflows.IncrementalPull, workflows.IncrementalPullInput{})
		return env, *started
	}

	env, started := pull(temporal.NewNonRetryableApplicationError("table is broken", payload.ErrTypeSchema, nil))
	if env.GetWorkflowError() == nil {
		t.Fatal("a failed merge must fail the pull")
	}
	if indexOf(started, "MergeLoad") < 0 || indexOf(started, "WriteCheckpoint") >= 0 {
		t.Fatalf("activities %v: the checkpoint moved although the merge failed", started)
	}

	env, started = pull(nil)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	merge, check, write := indexOf(started, "MergeLoad"), indexOf(started, "CheckLoad"), indexOf(started, "WriteCheckpoint")
	if merge < 0 || check < merge || write < check {
		t.Fatalf("activities %v: want MergeLoad, then CheckLoad, then WriteCheckpoint", started)
	}
}

func TestPullRestartsByTimeWhenTheCursorExpired(t *testing.T) {
	env := newEnv(t)
	checkpointed := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	env.OnActivity(payload.ReadCheckpoint, mock.Anything, mock.Anything).Return("c-old", nil)
	env.OnActivity(payload.CheckpointTime, mock.Anything, workflows.DefaultCheckpointKey).Return(checkpointed, nil).Once()
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{}, nil)
	var pulls []payload.PullInput
	env.OnActivity(payload.PullPages, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.PullInput) (payload.PullResult, error) {
			pulls = append(pulls, in)
			if in.Cursor == "c-old" {
				return payload.PullResult{}, temporal.NewNonRetryableApplicationError("pull events: 410 cursor_expired",
					payload.ErrTypeCursorRejected, nil)
			}
			return pullResult("c-new", false), nil
		})
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.CheckLoad, mock.Anything, mock.Anything).Return(payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1}, nil)
	env.OnActivity(payload.CleanupLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.WriteCheckpoint, mock.Anything, payload.CheckpointInput{Key: workflows.DefaultCheckpointKey, Value: "c-new"}).Return(nil).Once()
	env.ExecuteWorkflow(workflows.IncrementalPull, workflows.IncrementalPullInput{LateWindow: 2 * time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(pulls) != 2 || pulls[1].Cursor != "" || pulls[1].Since != "2026-09-01T10:00:00Z" {
		t.Fatalf("pulls %+v, want a retry without cursor since the checkpoint time minus the late window", pulls)
	}
	var res workflows.IncrementalPullResult
	if err := env.GetWorkflowResult(&res); err != nil || res.CursorResets != 1 || res.Cursor != "c-new" {
		t.Fatalf("result %+v %v", res, err)
	}
}

func TestPullRestartsByTimeOnlyOnce(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(payload.ReadCheckpoint, mock.Anything, mock.Anything).Return("c-old", nil)
	env.OnActivity(payload.CheckpointTime, mock.Anything, mock.Anything).Return(time.Now(), nil).Once()
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{}, nil)
	// A server that refuses every cursor, even fresh ones, must fail the
	// run rather than loop.
	env.OnActivity(payload.PullPages, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.PullInput) (payload.PullResult, error) {
			if in.Cursor == "" {
				return pullResult("c-new", true), nil
			}
			return payload.PullResult{}, temporal.NewNonRetryableApplicationError("pull events: 400 invalid_cursor",
				payload.ErrTypeCursorRejected, nil)
		})
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.CheckLoad, mock.Anything, mock.Anything).Return(payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1}, nil)
	env.OnActivity(payload.CleanupLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.WriteCheckpoint, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(workflows.IncrementalPull, workflows.IncrementalPullInput{})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "invalid_cursor") {
		t.Fatalf("err %v, want the refused cursor", err)
	}
}

func TestPullWritesCheckpointAndContinuesAsNew(t *testing.T) {
	env := newEnv(t)
	var written []string
	env.OnActivity(payload.ReadCheckpoint, mock.Anything, mock.Anything).Return("", nil)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{}, nil)
	env.OnActivity(payload.PullPages, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.PullInput) (payload.PullResult, error) {
			if in.Cursor == "" && in.Since != "24h" {
				t.Errorf("first pull must start at Start, got since %q", in.Since)
			}
			return pullResult(in.Cursor+"+", true), nil
		})
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.CheckLoad, mock.Anything, mock.Anything).Return(payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1}, nil)
	env.OnActivity(payload.CleanupLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.WriteCheckpoint, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.CheckpointInput) error {
			written = append(written, in.Value)
			return nil
		})
	env.ExecuteWorkflow(workflows.IncrementalPull, workflows.IncrementalPullInput{BatchesPerRun: 2})
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("err %v, want continue-as-new", err)
	}
	if strings.Join(written, ",") != "+,++" {
		t.Fatalf("checkpoints %v", written)
	}
}

func TestBackfillContinuesAsNewWithItsTotals(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	until := since.Add(4*24*time.Hour + 12*time.Hour) // 5 windows, the last one half a day
	run := func(in workflows.BackfillInput) (*testsuite.TestWorkflowEnvironment, []workflows.ExportLoadInput) {
		env := newEnv(t)
		env.RegisterWorkflow(workflows.Backfill)
		var children []workflows.ExportLoadInput
		env.OnWorkflow(workflows.ExportLoad, mock.Anything, mock.Anything).Return(
			func(_ workflow.Context, in workflows.ExportLoadInput) (workflows.ExportLoadResult, error) {
				children = append(children, in)
				return workflows.ExportLoadResult{Rows: 10, Quarantined: 1}, nil
			})
		env.ExecuteWorkflow(workflows.Backfill, in)
		return env, children
	}

	env, children := run(workflows.BackfillInput{Since: since, Until: until, Window: 24 * time.Hour, Parallelism: 2, MaxWindowsPerRun: 3})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("err %v, want continue-as-new after 3 windows", err)
	}
	var next workflows.BackfillInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(children) != 3 || !next.Since.Equal(since.Add(3*24*time.Hour)) || !next.Until.Equal(until) {
		t.Fatalf("first run loaded %d windows, continues at %s", len(children), next.Since)
	}
	if want := (workflows.BackfillResult{Windows: 3, Loaded: 3, Rows: 30, Quarantined: 3}); next.Done != want {
		t.Fatalf("carried totals %+v, want %+v", next.Done, want)
	}

	env, children = run(next)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.BackfillResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if want := (workflows.BackfillResult{Windows: 5, Loaded: 5, Rows: 50, Quarantined: 5}); res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	// Children run in parallel: sort them by window.
	sort.Slice(children, func(i, j int) bool { return children[i].Since.Before(children[j].Since) })
	if len(children) != 2 || !children[1].Until.Equal(until) || children[1].Until.Sub(children[1].Since) != 12*time.Hour {
		t.Fatalf("second run windows %+v", children)
	}
}

func TestReconcileRefusesMoreWindowsThanHistoryHolds(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Reconcile)
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: since.AddDate(1, 0, 0), Step: time.Hour})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "8760 windows of 1h0m0s is more than 2000: use a larger step") {
		t.Fatalf("err %v", err)
	}
}

func TestWebhookBatchLoadsItsDeliveriesOnce(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.WebhookBatch)
	signal := func(at time.Duration, key string) {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, key) }, at)
	}
	signal(10*time.Second, "webhooks/b.json") // from a receiver before DeliveriesSignal
	// a and b taken together while a signal was in flight; b retried
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.DeliveriesSignal, []string{"webhooks/a.json", "webhooks/b.json"})
	}, 20*time.Second)
	signal(30*time.Second, "webhooks/b.json") // the sender retried b again
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	var landed []string
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.LandLiveInput) (payload.LandLiveResult, error) {
			landed = append(landed, in.Keys...)
			return payload.LandLiveResult{Rows: 9}, nil
		})
	env.OnActivity(payload.SplitStaged, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.SplitStagedInput) (payload.SplitStagedResult, error) {
			if strings.Join(in.Keys, ",") != "webhooks/a.json,webhooks/b.json" || in.Source != "webhook" {
				t.Errorf("split %+v, want a and b once", in)
			}
			return payload.SplitStagedResult{Manifest: manifest}, nil
		}).Once()
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(payload.CheckLoad, mock.Anything, mock.Anything).Return(payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1}, nil)
	env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.RemoveStaged, mock.Anything, []string{"webhooks/a.json", "webhooks/b.json"}).Return(nil).Once()
	env.OnActivity(payload.CleanupLoad, mock.Anything, mock.Anything).Return(nil)
	order := activityOrder(env)
	env.ExecuteWorkflow(workflows.WebhookBatch, workflows.WebhookBatchInput{Window: time.Minute})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.WebhookBatchResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Deliveries != 2 || res.Rows != 9 || res.Quarantined != 1 {
		t.Fatalf("result %+v %v", res, err)
	}
	if got := strings.Join(landed, ","); got != "webhooks/b.json,webhooks/a.json" {
		t.Errorf("landed live %q, want b and then a (signalled together with b), once each", got)
	}
	assertLoadTail(t, *order)
}

// TestWebhookBatchBegunBeforeSharedSignalsLeavesThemUnread: a batch an
// older worker began (no shared-signals marker) reads only one-key
// signals, as that worker did, while it collects and after its window.
func TestWebhookBatchBegunBeforeSharedSignalsLeavesThemUnread(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.WebhookBatch)
	env.OnGetVersion("shared-signals", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliveriesSignal, []string{"webhooks/b.json"}) }, 20*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 59*time.Second)
	// While a's landing retries past the window and the batch waits for it.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliveriesSignal, []string{"webhooks/c.json"}) }, 62*time.Second)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).Return(payload.LandLiveResult{}, errors.New("streaming unavailable"))
	if got := runBatchSplitting(t, env); got != "webhooks/a.json" {
		t.Errorf("split %q, want a alone", got)
	}
}

// TestWebhookBatchLandsLiveBeforeItCommits: a batch streams the
// deliveries it has not streamed yet every LiveEvery, one landing at a
// time, the window's last ones beside the commit; the commit validates
// with the gateways the landings used; a landing that keeps failing is
// left to the commit.
func TestWebhookBatchLandsLiveBeforeItCommits(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.WebhookBatch)
	signal := func(at time.Duration, key string) {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, key) }, at)
	}
	signal(10*time.Second, "webhooks/b.json")
	signal(11*time.Second, "webhooks/a.json")
	signal(30*time.Second, "webhooks/b.json") // retried: already landed
	signal(40*time.Second, "webhooks/d.json")
	signal(57*time.Second, "webhooks/e.json")         // its landing, retried, outlives the window
	signal(59500*time.Millisecond, "webhooks/c.json") // arrives while e's landing runs: landed after it
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil).Once()
	var mu sync.Mutex // the last landing runs beside a retried one
	var landed []string
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.LandLiveInput) (payload.LandLiveResult, error) {
			if strings.Join(in.Gateways, ",") != "g" {
				t.Errorf("landing validates with %v, want the batch's gateways", in.Gateways)
			}
			mu.Lock()
			landed = append(landed, strings.Join(in.Keys, "+"))
			mu.Unlock()
			if in.Keys[0] == "webhooks/d.json" || in.Keys[0] == "webhooks/e.json" {
				return payload.LandLiveResult{}, errors.New("streaming unavailable")
			}
			return payload.LandLiveResult{Rows: int64(len(in.Keys))}, nil
		})
	env.OnActivity(payload.SplitStaged, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.SplitStagedInput) (payload.SplitStagedResult, error) {
			if strings.Join(in.Gateways, ",") != "g" {
				t.Errorf("commit validates with %v, want the gateways the landings used", in.Gateways)
			}
			return payload.SplitStagedResult{Manifest: manifest}, nil
		}).Once()
	env.OnActivity(payload.RemoveStaged, mock.Anything, mock.Anything).Return(nil)
	happyTail(env)
	order := activityOrder(env)
	env.ExecuteWorkflow(workflows.WebhookBatch, workflows.WebhookBatchInput{Window: time.Minute})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// c arrives while e's landing retries: the last landing takes it,
	// beside e's and the commit.
	slices.Sort(landed)
	want := "webhooks/b.json+webhooks/a.json webhooks/c.json webhooks/d.json webhooks/d.json webhooks/d.json webhooks/e.json webhooks/e.json webhooks/e.json"
	if got := strings.Join(landed, " "); got != want {
		t.Errorf("landings %q, want %q", got, want)
	}
	var res workflows.WebhookBatchResult
	if err := env.GetWorkflowResult(&res); err != nil || res.LiveRows != 3 || res.Deliveries != 5 {
		t.Errorf("result %+v %v, want 3 live rows of 5 deliveries", res, err)
	}
	if n := strings.Count(strings.Join(*order, " "), "FetchGateways"); n != 1 {
		t.Errorf("gateways listed %d times, want once: the commit reuses the landings' list", n)
	}
	assertLoadTail(t, *order)
}

// TestWebhookBatchTakesDeliveriesSignalledWhileItsLandingsFinish: after
// the commit, a batch waits for its last landing; a delivery signalled
// meanwhile is committed by the batch, not left unhandled.
func TestWebhookBatchTakesDeliveriesSignalledWhileItsLandingsFinish(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.WebhookBatch)
	signal := func(at time.Duration, key string) {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, key) }, at)
	}
	signal(10*time.Second, "webhooks/a.json")
	signal(59*time.Second, "webhooks/b.json") // its landing retries past the commit
	// while the batch waits for it
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.DeliveriesSignal, []string{"webhooks/c.json"})
	}, 62*time.Second)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.LandLiveInput) (payload.LandLiveResult, error) {
			if in.Keys[0] == "webhooks/b.json" {
				return payload.LandLiveResult{}, errors.New("streaming unavailable")
			}
			return payload.LandLiveResult{Rows: 1}, nil
		})
	if got := runBatchSplitting(t, env); got != "webhooks/a.json webhooks/b.json webhooks/c.json" {
		t.Errorf("committed %q, want a, b and then c", got)
	}
}

// runBatchSplitting runs a one-minute WebhookBatch whose load tail
// succeeds and returns the keys it split (recordSplits).
func runBatchSplitting(t *testing.T, env *testsuite.TestWorkflowEnvironment) string {
	t.Helper()
	split := recordSplits(env)
	env.OnActivity(payload.RemoveStaged, mock.Anything, mock.Anything).Return(nil)
	happyTail(env)
	env.ExecuteWorkflow(workflows.WebhookBatch, workflows.WebhookBatchInput{Window: time.Minute})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	return split()
}

// recordSplits mocks SplitStaged and returns the keys it was given, in
// order, joined by spaces (splits may run beside a retried landing).
func recordSplits(env *testsuite.TestWorkflowEnvironment) func() string {
	var mu sync.Mutex
	var split []string
	env.OnActivity(payload.SplitStaged, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.SplitStagedInput) (payload.SplitStagedResult, error) {
			mu.Lock()
			defer mu.Unlock()
			split = append(split, in.Keys...)
			return payload.SplitStagedResult{Manifest: manifest}, nil
		})
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(split, " ")
	}
}

// activityOrder records the activities a workflow starts, in order.
func activityOrder(env *testsuite.TestWorkflowEnvironment) *[]string {
	var started []string
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		started = append(started, info.ActivityType.Name)
	})
	return &started
}

// assertLoadTail checks the one order every load shares (landLoad):
// merge, refresh the dimensions, check, then clean up.
func assertLoadTail(t *testing.T, started []string) {
	t.Helper()
	merge, refresh, check, clean := indexOf(started, "MergeLoad"), indexOf(started, "RefreshDimensions"),
		indexOf(started, "CheckLoad"), indexOf(started, "CleanupLoad")
	if merge < 0 || !(merge < refresh && refresh < check && check < clean) {
		t.Errorf("activities %v: want MergeLoad, RefreshDimensions, CheckLoad, CleanupLoad in that order", started)
	}
}

// An export and a replay of staged chunks load in the same order.
func TestExportAndReplayShareTheLoadTail(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusCompleted), nil).Once()
	happyLoad(env)
	order := activityOrder(env)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	assertLoadTail(t, *order)

	env = newEnv(t)
	env.OnActivity(payload.ReadManifest, mock.Anything, "L").Return(manifest, nil).Once()
	happyTail(env)
	// A load the compaction could not commit stays pending until then.
	env.OnActivity(payload.FinishLoads, mock.Anything, []string{"L"}).Return(nil).Once()
	order = activityOrder(env)
	env.ExecuteWorkflow(workflows.Replay, workflows.ReplayInput{LoadID: "L"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	assertLoadTail(t, *order)
	if check, finish, clean := indexOf(*order, "CheckLoad"), indexOf(*order, "FinishLoads"), indexOf(*order, "CleanupLoad"); !(check < finish && finish < clean) {
		t.Errorf("activities %v: want FinishLoads after CheckLoad, before CleanupLoad", *order)
	}
}

// ceilings records each started activity's ScheduleToClose timeout: the
// test suite itself stops retrying after 10 attempts when a policy has no
// limit, so the configured ceiling is what shows a retry-forever.
func ceilings(env *testsuite.TestWorkflowEnvironment) map[string]time.Duration {
	got := map[string]time.Duration{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		got[info.ActivityType.Name] = max(got[info.ActivityType.Name], info.ScheduleToCloseTimeout)
	})
	return got
}

// A transient failure that never heals must end in a failed workflow (an
// operator sees it), not in retries forever: every activity has a
// ceiling, here the merge's.
func TestTransientFailureThatNeverHealsFailsTheWorkflow(t *testing.T) {
	env := newEnv(t)
	limits := ceilings(env)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusCompleted), nil)
	env.OnActivity(payload.DownloadExport, mock.Anything, mock.Anything).Return(payload.DownloadResult{Key: "exports/L/exp_1.data", Bytes: 100}, nil)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	env.OnActivity(payload.SplitExport, mock.Anything, mock.Anything).Return(manifest, nil)
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	merges := 0
	env.OnActivity(payload.MergeLoad, mock.Anything, mock.Anything).Return(func(context.Context, payload.MergeInput) error {
		merges++
		return errors.New("backend error")
	})
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "backend error") {
		t.Fatalf("err %v after %d merges, want the merge's error", err, merges)
	}
	if len(limits) < 5 {
		t.Fatalf("saw %d activities", len(limits))
	}
	for name, d := range limits {
		if d <= 0 || d > 6*time.Hour {
			t.Errorf("%s: ScheduleToClose %s, want a ceiling of at most 6h", name, d)
		}
	}
}

// An export whose file fails its checksum (after one re-download) is
// replaced by a new export, like an expired one.
func TestChecksumFailureExportsAgain(t *testing.T) {
	env := newEnv(t)
	var keys []string
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.CreateExportInput) (payload.Export, error) {
			keys = append(keys, in.IdempotencyKey)
			return export(payload.StatusCompleted), nil
		})
	env.OnActivity(payload.DownloadExport, mock.Anything, mock.Anything).Return(payload.DownloadResult{},
		temporal.NewNonRetryableApplicationError("sha256 mismatch", payload.ErrTypeChecksum, nil)).Once()
	happyLoad(env)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Fatalf("idempotency keys %v: a bad file needs a new export", keys)
	}
}

var day = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Children are collected as they finish: a slow first window does not
// hold back the next one.
func TestBackfillCollectsChildrenAsTheyFinish(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Backfill)
	started, finished := map[time.Time]time.Time{}, map[time.Time]time.Time{}
	env.OnWorkflow(workflows.ExportLoad, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, in workflows.ExportLoadInput) (workflows.ExportLoadResult, error) {
			started[in.Since] = workflow.Now(ctx)
			d := time.Hour
			if in.Since.Equal(day) {
				d = 10 * time.Hour
			}
			if err := workflow.Sleep(ctx, d); err != nil {
				return workflows.ExportLoadResult{}, err
			}
			finished[in.Since] = workflow.Now(ctx)
			return workflows.ExportLoadResult{Rows: 10}, nil
		})
	env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Since: day, Until: day.Add(72 * time.Hour), Window: 24 * time.Hour, Parallelism: 2})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	third := day.Add(48 * time.Hour)
	if !started[third].Before(finished[day]) {
		t.Fatalf("third window started at %s, after the slow first one finished (%s): children collected in start order",
			started[third].Format(time.TimeOnly), finished[day].Format(time.TimeOnly))
	}
	var res workflows.BackfillResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Loaded != 3 || res.Rows != 30 {
		t.Fatalf("result %+v %v", res, err)
	}
}

// A window whose child id is taken by a run the backfill did not start
// (an earlier backfill's, still running) is waited for and counted by
// that run's real result, not as done the moment its id was seen.
func TestBackfillWaitsForAWindowRunningElsewhere(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Backfill)
	in := workflows.BackfillInput{Since: day, Until: day.Add(48 * time.Hour), Window: 24 * time.Hour, Parallelism: 2}
	taken := workflows.WindowWorkflowID("bf", day, day.Add(24*time.Hour))
	wrapper := func(ctx workflow.Context) (workflows.BackfillResult, error) {
		other := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: taken}),
			workflows.ExportLoad, workflows.ExportLoadInput{Since: day, Until: day.Add(24 * time.Hour)})
		if err := other.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			return workflows.BackfillResult{}, err
		}
		var res workflows.BackfillResult
		err := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: "bf"}),
			workflows.Backfill, in).Get(ctx, &res)
		return res, err
	}
	env.RegisterWorkflowWithOptions(wrapper, workflow.RegisterOptions{Name: "wrapper"})
	env.OnWorkflow(workflows.ExportLoad, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, in workflows.ExportLoadInput) (workflows.ExportLoadResult, error) {
			return workflows.ExportLoadResult{Rows: 10, Quarantined: 1}, workflow.Sleep(ctx, 5*time.Hour)
		})
	asked := 0
	env.OnActivity(payload.WorkflowOutcome, mock.Anything, taken).Return(
		func(context.Context, string) (payload.RunOutcome, error) {
			if asked++; asked < 3 {
				return payload.RunOutcome{Running: true}, nil
			}
			return payload.RunOutcome{Rows: 7, Quarantined: 2}, nil
		})
	env.ExecuteWorkflow("wrapper")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.BackfillResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if want := (workflows.BackfillResult{Windows: 2, Loaded: 1, Skipped: 1, Rows: 17, Quarantined: 3}); res != want || asked != 3 {
		t.Fatalf("result %+v after asking %d times, want %+v after 3", res, asked, want)
	}
}

// Failures carried through continue-as-new are bounded: the first 20
// messages and a count.
func TestBackfillBoundsTheFailuresItCarries(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Backfill)
	env.OnWorkflow(workflows.ExportLoad, mock.Anything, mock.Anything).Return(workflows.ExportLoadResult{},
		temporal.NewNonRetryableApplicationError("export failed", "Test", nil))
	env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Since: day, Until: day.Add(30 * time.Hour), Window: time.Hour,
		Parallelism: 5, MaxWindowsPerRun: 25, Failed: []string{"an earlier run's failure"}, Done: workflows.BackfillResult{Windows: 1, Failed: 1}})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("err %v, want continue-as-new", err)
	}
	var next workflows.BackfillInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(next.Failed) != 20 || next.Failed[0] != "an earlier run's failure" || next.Done.Failed != 26 {
		t.Fatalf("carries %d failure messages and a count of %d, want 20 and 26", len(next.Failed), next.Done.Failed)
	}
}

// A killed worker's activity is retried soon: every activity heartbeats
// (from a ticker, every third of the timeout) with a timeout of at most
// 10s, so about 10s after a kill it runs again elsewhere.
func TestEveryActivityNoticesADeadWorkerWithin10s(t *testing.T) {
	env := newEnv(t)
	timeouts := map[string]time.Duration{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		timeouts[info.ActivityType.Name] = info.HeartbeatTimeout
	})
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusQueued), nil)
	env.OnActivity(payload.GetExport, mock.Anything, "exp_1").Return(export(payload.StatusCompleted), nil)
	happyLoad(env)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(timeouts) < 9 {
		t.Fatalf("saw %d activities: %v", len(timeouts), timeouts)
	}
	for name, d := range timeouts {
		if d <= 0 || d > 10*time.Second {
			t.Errorf("%s: heartbeat timeout %s, want at most 10s", name, d)
		}
	}
}

// The progress query travels as JSON: the count of failed windows must
// survive it next to the (bounded) list of messages.
func TestBackfillProgressKeepsTheFailureCountInJSON(t *testing.T) {
	in := workflows.BackfillProgress{BackfillResult: workflows.BackfillResult{Windows: 30, Failed: 25}, Failures: []string{"w1: boom"}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out workflows.BackfillProgress
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Failed != 25 || len(out.Failures) != 1 {
		t.Fatalf("after JSON: %d failed, %d messages; want 25 and 1 (%s)", out.Failed, len(out.Failures), b)
	}
}

// Reconcile asks the API once for the whole range (group_by by hour), not
// once per window, and compares each window's events with the fact
// table alone: the quarantine is not counted, and a day's windows are
// counted in one query (CountFactByWindow). A reconcile begun before
// those changes replays counting as it did: a window at a time, with
// the quarantine before the first.
func TestReconcileCountsTheSourceInOneCall(t *testing.T) {
	since := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	until := since.Add(72 * time.Hour)
	fact := map[time.Time]int64{since: 10, since.Add(24 * time.Hour): 5, since.Add(48 * time.Hour): 6}
	for _, tc := range []struct {
		name                               string
		factOnly, byDay                    workflow.Version
		quarantined                        int64
		wantByDay, wantFact, wantWarehouse int
	}{
		{"now", 1, 1, 0, 3, 0, 0},
		{"begun before the day's count", 1, workflow.DefaultVersion, 0, 0, 3, 0},
		{"begun before the change", workflow.DefaultVersion, workflow.DefaultVersion, 1, 0, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			env.RegisterWorkflow(workflows.Reconcile)
			env.OnGetVersion("reconcile-group-by-fact-only", workflow.DefaultVersion, 1).Return(tc.factOnly)
			// Asked only of a fact-only reconcile. Begun before the recount of
			// a window that disagrees (TestReconcileRecountsWhereGroupByDisagrees).
			env.OnGetVersion("reconcile-fact-by-day", workflow.DefaultVersion, 1).Return(tc.byDay).Maybe()
			env.OnGetVersion("reconcile-group-by-recount", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Maybe()
			env.OnActivity(payload.CountSourceByWindow, mock.Anything, payload.Steps{Since: since, Until: until, Step: 24 * time.Hour}).
				Return([]int64{10, 5, 7}, nil).Once()
			env.OnActivity(payload.CountSource, mock.Anything, mock.Anything).Return(int64(0), nil).Never()
			counted, factOnly, byDay := 0, 0, 0
			env.OnActivity(payload.CountWarehouse, mock.Anything, mock.Anything).Return(
				func(_ context.Context, w payload.Window) (payload.WarehouseCount, error) {
					counted++
					return payload.WarehouseCount{Fact: fact[w.Since], Quarantined: 1, Unplaced: 2}, nil
				}).Maybe()
			env.OnActivity(payload.CountFact, mock.Anything, mock.Anything).Return(
				func(_ context.Context, w payload.Window) (int64, error) {
					factOnly++
					return fact[w.Since], nil
				}).Maybe()
			env.OnActivity(payload.CountFactByWindow, mock.Anything, mock.Anything).Return(
				func(_ context.Context, s payload.Steps) ([]int64, error) {
					byDay++
					if s.Step != 24*time.Hour || s.Until.Sub(s.Since) != s.Step {
						return nil, fmt.Errorf("counted %+v, want a day of daily windows", s)
					}
					return []int64{fact[s.Since]}, nil
				}).Maybe()
			env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: until, Step: 24 * time.Hour})
			var res workflows.ReconcileResult
			if err := env.GetWorkflowResult(&res); err != nil {
				t.Fatal(err)
			}
			// group_by counts what the API aggregates: the third window lacks one
			// event in the fact table, which the quarantine does not explain.
			if !res.GroupBy || len(res.Windows) != 3 || len(res.Gaps) != 1 || res.Gaps[0].Gap != 1 || !res.Gaps[0].Since.Equal(since.Add(48*time.Hour)) {
				t.Fatalf("result %+v", res)
			}
			if byDay != tc.wantByDay || factOnly != tc.wantFact || counted != tc.wantWarehouse {
				t.Errorf("%d day counts, %d fact-only counts, %d with the quarantine; want %d, %d and %d", byDay, factOnly, counted, tc.wantByDay, tc.wantFact, tc.wantWarehouse)
			}
			if res.Windows[0].Quarantined != tc.quarantined {
				t.Errorf("quarantined %d, want %d", res.Windows[0].Quarantined, tc.quarantined)
			}
		})
	}
}

// The contract does not say whether group_by aggregates the events a
// loader quarantines. A window whose group_by count differs from fact is
// asked count=true: equal to group_by (a server that aggregates every
// event), the window is counted strictly against fact and quarantine (no
// unplaced record explains a gap): one where the server counted a
// quarantined event is no gap, one that lost an event is; more than
// group_by (a server that leaves the invalid out, as the simulator),
// group_by's gap stands.
func TestReconcileRecountsWhereGroupByDisagrees(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Reconcile)
	since := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	day := func(i int) time.Time { return since.Add(time.Duration(i) * 24 * time.Hour) }
	until := day(4)
	fact := map[time.Time]int64{day(0): 10, day(1): 5, day(2): 6, day(3): 4}
	// Every event counted, the quarantined too: day 1 holds one such, and
	// day 2 one such and one event lost; day 3 one quarantined and one lost
	// where group_by counts the valid ones only (5 of 6).
	all := map[time.Time]int64{day(0): 10, day(1): 6, day(2): 8, day(3): 6}
	env.OnActivity(payload.CountSourceByWindow, mock.Anything, payload.Steps{Since: since, Until: until, Step: 24 * time.Hour}).
		Return([]int64{10, 6, 8, 5}, nil).Once()
	env.OnActivity(payload.CountFactByWindow, mock.Anything, mock.Anything).Return(
		func(_ context.Context, s payload.Steps) ([]int64, error) { return []int64{fact[s.Since]}, nil })
	var sourced, counted []time.Time
	env.OnActivity(payload.CountSource, mock.Anything, mock.Anything).Return(
		func(_ context.Context, w payload.Window) (int64, error) {
			sourced = append(sourced, w.Since)
			return all[w.Since], nil
		})
	env.OnActivity(payload.CountWarehouse, mock.Anything, mock.Anything).Return(
		func(_ context.Context, w payload.Window) (payload.WarehouseCount, error) {
			counted = append(counted, w.Since)
			return payload.WarehouseCount{Fact: fact[w.Since], Quarantined: 1, Unplaced: 2}, nil // explaining no group_by gap
		})
	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: until, Step: 24 * time.Hour})
	var res workflows.ReconcileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	asked := []time.Time{day(1), day(2), day(3)}
	if fmt.Sprint(sourced) != fmt.Sprint(asked) || fmt.Sprint(counted) != fmt.Sprint(asked) {
		t.Errorf("asked the source at %v and the warehouse at %v, want the three that disagree %v", sourced, counted, asked)
	}
	if len(res.Windows) != 4 || res.Windows[0].Recounted || !res.Windows[1].Recounted || res.Windows[1].Gap != 0 || res.Windows[3].Recounted {
		t.Errorf("windows %+v: want the first and the last as group_by counted them, the second recounted without a gap", res.Windows)
	}
	if len(res.Gaps) != 2 || !res.Gaps[0].Since.Equal(day(2)) || res.Gaps[0].Gap != 1 || res.Gaps[0].Quarantined != 1 ||
		!res.Gaps[1].Since.Equal(day(3)) || res.Gaps[1].Gap != 1 || res.Gaps[1].Source != 5 {
		t.Errorf("gaps %+v, want day 2's lost event recounted, day 3's as group_by counted it", res.Gaps)
	}
}

// Hourly windows are counted a UTC day at a time: two days from 06:00,
// three queries (to midnight, the next day, the rest), their counts in
// the windows' order.
func TestReconcileCountsFactADayAtATime(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Reconcile)
	since := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	until := since.Add(48 * time.Hour)
	source := make([]int64, 48)
	for i := range source {
		source[i] = int64(i)
	}
	env.OnActivity(payload.CountSourceByWindow, mock.Anything, payload.Steps{Since: since, Until: until, Step: time.Hour}).Return(source, nil).Once()
	var asked []payload.Steps
	env.OnActivity(payload.CountFactByWindow, mock.Anything, mock.Anything).Return(
		func(_ context.Context, s payload.Steps) ([]int64, error) {
			asked = append(asked, s)
			var n []int64
			for t := s.Since; t.Before(s.Until); t = t.Add(s.Step) {
				n = append(n, int64(t.Sub(since)/time.Hour))
			}
			return n, nil
		})
	env.OnActivity(payload.CountFact, mock.Anything, mock.Anything).Return(int64(0), nil).Never()
	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: until, Step: time.Hour})
	var res workflows.ReconcileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	midnight := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	want := []payload.Steps{{Since: since, Until: midnight, Step: time.Hour}, {Since: midnight, Until: midnight.Add(24 * time.Hour), Step: time.Hour},
		{Since: midnight.Add(24 * time.Hour), Until: until, Step: time.Hour}}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("counted %v, want %v", asked, want)
	}
	if len(res.Windows) != 48 || len(res.Gaps) != 0 || res.Windows[47].Fact != 47 {
		t.Errorf("windows %d, gaps %v, the last window's fact %d; want 48, none, 47", len(res.Windows), res.Gaps, res.Windows[len(res.Windows)-1].Fact)
	}
}

// A step in parts of an hour cannot be served by group_by's hours: each
// window is counted on its own.
func TestReconcileCountsPartHourWindowsOneByOne(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Reconcile)
	since := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	env.OnActivity(payload.CountSourceByWindow, mock.Anything, mock.Anything).Return(nil, nil).Never()
	env.OnActivity(payload.CountSource, mock.Anything, mock.Anything).Return(int64(3), nil).Times(2)
	env.OnActivity(payload.CountWarehouse, mock.Anything, mock.Anything).Return(payload.WarehouseCount{Fact: 2, Quarantined: 1}, nil).Times(2)
	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: since.Add(time.Hour), Step: 30 * time.Minute})
	var res workflows.ReconcileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.GroupBy || len(res.Windows) != 2 || len(res.Gaps) != 0 {
		t.Fatalf("result %+v", res)
	}
}

// TestExportLoadSplitsByTheExportsRowCount: the split is told the
// export's row_count, by which a large export's chunks grow to commit in
// one transaction (warehouse.ChunkRowsFor).
func TestExportLoadSplitsByTheExportsRowCount(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(payload.CreateExport, mock.Anything, mock.Anything).Return(export(payload.StatusCompleted), nil).Once()
	env.OnActivity(payload.DownloadExport, mock.Anything, mock.Anything).Return(payload.DownloadResult{Key: "exports/L/exp_1.data", Bytes: 100}, nil)
	var got payload.SplitInput
	env.OnActivity(payload.SplitExport, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.SplitInput) (payload.Manifest, error) {
			got = in
			return manifest, nil
		})
	happyTail(env)
	env.ExecuteWorkflow(workflows.ExportLoad, window)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got.Records != 10 {
		t.Fatalf("split input %+v, want Records 10, the export's row_count", got)
	}
}

// The warehouse's unplaced count is bounded by each window's start, so it
// shrinks window by window: the reconcile keeps the largest, which may
// explain a gap in any window. A reconcile begun before the change
// replays keeping the last window's, as it did.
func TestReconcileKeepsTheLargestUnplacedCount(t *testing.T) {
	for _, tc := range []struct {
		name     string
		version  workflow.Version
		unplaced int64
		gaps     int
	}{
		{"now", 1, 2, 0},
		{"begun before the change", workflow.DefaultVersion, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			env.RegisterWorkflow(workflows.Reconcile)
			env.OnGetVersion("reconcile-unplaced-max", workflow.DefaultVersion, 1).Return(tc.version)
			since := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
			env.OnActivity(payload.CountSource, mock.Anything, mock.Anything).Return(int64(5), nil).Times(2)
			env.OnActivity(payload.CountWarehouse, mock.Anything, mock.Anything).Return(
				func(_ context.Context, w payload.Window) (payload.WarehouseCount, error) {
					if w.Since.Equal(since) {
						return payload.WarehouseCount{Fact: 3, Unplaced: 2}, nil // a gap of 2
					}
					return payload.WarehouseCount{Fact: 5}, nil
				}).Times(2)
			env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: since.Add(time.Hour), Step: 30 * time.Minute})
			var res workflows.ReconcileResult
			if err := env.GetWorkflowResult(&res); err != nil {
				t.Fatal(err)
			}
			if res.Unplaced != tc.unplaced || len(res.Gaps) != tc.gaps {
				t.Fatalf("result %+v: want %d unplaced and %d gaps", res, tc.unplaced, tc.gaps)
			}
		})
	}
}

// Where no window ends at midnight (7-hour windows from 04:00), a query
// takes as many whole windows as fit in a day, and the last ends at the
// range's end.
func TestReconcileCountsFactWithoutAMidnightBoundary(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Reconcile)
	since := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	until := since.Add(5 * 7 * time.Hour)
	env.OnActivity(payload.CountSourceByWindow, mock.Anything, payload.Steps{Since: since, Until: until, Step: 7 * time.Hour}).Return(make([]int64, 5), nil).Once()
	var asked []payload.Steps
	env.OnActivity(payload.CountFactByWindow, mock.Anything, mock.Anything).Return(
		func(_ context.Context, s payload.Steps) ([]int64, error) {
			asked = append(asked, s)
			return make([]int64, s.Until.Sub(s.Since)/s.Step), nil
		})
	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: until, Step: 7 * time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := []payload.Steps{{Since: since, Until: since.Add(21 * time.Hour), Step: 7 * time.Hour}, {Since: since.Add(21 * time.Hour), Until: until, Step: 7 * time.Hour}}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("counted %v, want %v", asked, want)
	}
}
