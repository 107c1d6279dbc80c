package workflows_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// pendingLoad is manifest as load id.
func pendingLoad(id string) payload.PendingLoad {
	m := manifest
	m.LoadID = id
	return payload.PendingLoad{Source: payload.SourcePull, Manifest: m}
}

// complete is what CheckLoads finds of a load of manifest's counts.
var complete = payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1}

// pullOnce mocks a pull from checkpoint c0 of one batch, to c1.
func pullOnce(t *testing.T) (*testsuite.TestWorkflowEnvironment, *[]string) {
	env := newEnv(t)
	started := startedActivities(env)
	env.OnActivity(payload.ReadCheckpoint, mock.Anything, workflows.DefaultCheckpointKey).Return("c0", nil)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{}, nil)
	env.OnActivity(payload.PullPages, mock.Anything, mock.Anything).Return(pullResult("c1", false), nil)
	return env, started
}

// A deferred pull stages its batch, lands it for the live view and marks
// it pending before it moves the checkpoint; it merges, checks, refreshes
// and cleans up nothing: the compaction does.
func TestDeferredPullMarksItsBatchPendingBeforeTheCheckpoint(t *testing.T) {
	env, started := pullOnce(t)
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil).Times(2)
	env.OnActivity(payload.LandLiveChunks, mock.Anything, payload.ChunksInput{LoadID: manifest.LoadID, Chunks: manifest.Chunks}).Return(int64(9), nil).Once()
	env.OnActivity(payload.DeferLoad, mock.Anything, payload.PendingLoad{Source: payload.SourcePull, Manifest: manifest}).Return(nil).Once()
	env.OnActivity(payload.WriteCheckpoint, mock.Anything, payload.CheckpointInput{Key: workflows.DefaultCheckpointKey, Value: "c1"}).Return(nil).Once()
	// Mocked so that a wrong call is recorded; the started list is what
	// is asserted.
	for _, a := range []string{payload.MergeLoad, payload.CheckLoad, payload.CleanupLoad} {
		env.OnActivity(a, mock.Anything, mock.Anything).Return(nil).Maybe()
	}
	env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.ExecuteWorkflow(workflows.IncrementalPull, workflows.IncrementalPullInput{Defer: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"MergeLoad", "CheckLoad", "CleanupLoad", "RefreshDimensions"} {
		if indexOf(*started, a) >= 0 {
			t.Errorf("activities %v: a deferred pull ran %s", *started, a)
		}
	}
	if mark, live, write := indexOf(*started, "DeferLoad"), indexOf(*started, "LandLiveChunks"), indexOf(*started, "WriteCheckpoint"); !(mark >= 0 && mark < live && live < write) {
		t.Errorf("activities %v: want DeferLoad, LandLiveChunks, then WriteCheckpoint", *started)
	}
}

// A deferred pull whose mark cannot be written does not move the
// checkpoint: the next pull pulls the batch again.
func TestDeferredPullKeepsTheCheckpointWhenTheMarkFails(t *testing.T) {
	env, started := pullOnce(t)
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.LandLiveChunks, mock.Anything, mock.Anything).Return(int64(0), errors.New("live_events unavailable")).Maybe()
	env.OnActivity(payload.DeferLoad, mock.Anything, mock.Anything).Return(temporal.NewNonRetryableApplicationError("disk full", payload.ErrTypeMalformed, nil))
	env.OnActivity(payload.WriteCheckpoint, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.ExecuteWorkflow(workflows.IncrementalPull, workflows.IncrementalPullInput{Defer: true})
	if env.GetWorkflowError() == nil {
		t.Fatal("a pull whose batch could not be marked pending must fail")
	}
	if indexOf(*started, "WriteCheckpoint") >= 0 {
		t.Errorf("activities %v: the checkpoint moved past a batch neither merged nor pending", *started)
	}
}

// A deferred webhook batch stages its load and marks it pending; it
// removes the delivery files but keeps the load's chunks for the
// compaction.
func TestDeferredWebhookBatchMarksItsLoadPending(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.WebhookBatch)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 10*time.Second)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).Return(payload.LandLiveResult{Rows: 9}, nil)
	env.OnActivity(payload.SplitStaged, mock.Anything, mock.Anything).Return(payload.SplitStagedResult{Manifest: manifest}, nil).Once()
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil).Times(2)
	env.OnActivity(payload.DeferLoad, mock.Anything, payload.PendingLoad{Source: payload.SourceWebhook, Manifest: manifest}).Return(nil).Once()
	env.OnActivity(payload.RemoveStaged, mock.Anything, []string{"webhooks/a.json"}).Return(nil).Once()
	started := startedActivities(env)
	for _, a := range []string{payload.MergeLoad, payload.CheckLoad, payload.CleanupLoad, payload.RefreshDimensions} {
		env.OnActivity(a, mock.Anything, mock.Anything).Return(nil).Maybe()
	}
	env.OnActivity(payload.LandLiveChunks, mock.Anything, mock.Anything).Return(int64(0), nil).Maybe()
	env.ExecuteWorkflow(workflows.WebhookBatch, workflows.WebhookBatchInput{Window: time.Minute, Defer: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// The batch streamed its deliveries already: no second landing.
	for _, a := range []string{"MergeLoad", "CheckLoad", "CleanupLoad", "RefreshDimensions", "LandLiveChunks"} {
		if indexOf(*started, a) >= 0 {
			t.Errorf("activities %v: a deferred batch ran %s", *started, a)
		}
	}
}

// compactEnv mocks the compaction's tail: finish, clean up, refresh.
func compactEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *[]string) {
	env := newEnv(t)
	env.RegisterWorkflow(workflows.Compact)
	var finished []string
	env.OnActivity(payload.FinishLoads, mock.Anything, mock.Anything).Return(func(_ context.Context, ids []string) error {
		finished = append(finished, ids...)
		return nil
	}).Maybe()
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil).Maybe()
	env.OnActivity(payload.RefreshDimensions, mock.Anything, mock.Anything).Return(nil).Maybe()
	return env, &finished
}

// The pending loads are committed in one MergeLoads, checked, counted,
// and only then unmarked; the dimensions are refreshed once.
func TestCompactCommitsPendingLoadsTogether(t *testing.T) {
	env, finished := compactEnv(t)
	started := startedActivities(env)
	env.OnActivity(payload.PendingLoads, mock.Anything, mock.Anything).Return(
		payload.PendingLoadsResult{Loads: []payload.PendingLoad{pendingLoad("A"), pendingLoad("B")}}, nil).Once()
	env.OnActivity(payload.MergeLoads, mock.Anything, mock.Anything).Return(func(_ context.Context, in payload.MergeLoadsInput) error {
		if len(in.Loads) != 2 || in.Loads[0].LoadID != "A" || in.Loads[1].LoadID != "B" || len(in.Loads[1].Chunks) != 2 || in.Loads[0].Source != payload.SourcePull {
			t.Errorf("merge %+v, want A and B with their chunks", in)
		}
		return nil
	}).Once()
	env.OnActivity(payload.CheckLoads, mock.Anything, []string{"A", "B"}).Return(map[string]payload.Completeness{"A": complete, "B": complete}, nil).Once()
	env.ExecuteWorkflow(workflows.Compact, workflows.CompactInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.CompactResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Loads != 2 || res.Rows != 18 || res.Quarantined != 2 {
		t.Fatalf("result %+v %v", res, err)
	}
	if strings.Join(*finished, ",") != "A,B" {
		t.Errorf("finished %v, want A and B", *finished)
	}
	if check, finish := indexOf(*started, "CheckLoads"), indexOf(*started, "FinishLoads"); check < 0 || finish < check {
		t.Errorf("activities %v: a mark removed before its load was checked", *started)
	}
}

// A load that is incomplete after the commit (or cannot be committed)
// fails alone: the others are committed and unmarked, it stays pending
// and the run fails naming it.
func TestCompactLeavesABrokenLoadPendingAndNamesIt(t *testing.T) {
	env, finished := compactEnv(t)
	env.OnActivity(payload.PendingLoads, mock.Anything, mock.Anything).Return(func(_ context.Context, in payload.PendingLoadsInput) (payload.PendingLoadsResult, error) {
		if len(in.Exclude) == 0 {
			return payload.PendingLoadsResult{Loads: []payload.PendingLoad{pendingLoad("A"), pendingLoad("B")}, More: true}, nil
		}
		if strings.Join(in.Exclude, ",") != "B" {
			t.Errorf("listed again excluding %v, want B", in.Exclude)
		}
		return payload.PendingLoadsResult{}, nil
	}).Twice()
	env.OnActivity(payload.MergeLoads, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.CheckLoads, mock.Anything, mock.Anything).Return(func(_ context.Context, ids []string) (map[string]payload.Completeness, error) {
		out := map[string]payload.Completeness{}
		for _, id := range ids {
			out[id] = complete
		}
		out["B"] = payload.Completeness{RawRows: 9, LedgerRows: 9, LedgerQuar: 1, MissingInFact: 3}
		return out, nil
	})
	env.ExecuteWorkflow(workflows.Compact, workflows.CompactInput{})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "B") || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("err %v, want B named, to replay", err)
	}
	if strings.Join(*finished, ",") != "A" {
		t.Errorf("finished %v, want only A", *finished)
	}
}

// A mark the listing cannot read holds back no other load: the loads
// listed beside it are committed and unmarked, the later listings pass
// it over, and the run fails naming it.
func TestCompactCommitsPastAnUnreadableMarkAndNamesIt(t *testing.T) {
	env, finished := compactEnv(t)
	env.OnActivity(payload.PendingLoads, mock.Anything, mock.Anything).Return(func(_ context.Context, in payload.PendingLoadsInput) (payload.PendingLoadsResult, error) {
		if len(in.Exclude) == 0 {
			return payload.PendingLoadsResult{Loads: []payload.PendingLoad{pendingLoad("A")}, Unreadable: []string{"X"}, More: true}, nil
		}
		if strings.Join(in.Exclude, ",") != "X" {
			t.Errorf("listed again excluding %v, want X", in.Exclude)
		}
		return payload.PendingLoadsResult{}, nil
	}).Twice()
	env.OnActivity(payload.MergeLoads, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(payload.CheckLoads, mock.Anything, []string{"A"}).Return(map[string]payload.Completeness{"A": complete}, nil).Once()
	env.ExecuteWorkflow(workflows.Compact, workflows.CompactInput{})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "X") || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("err %v, want X named, to replay", err)
	}
	if strings.Join(*finished, ",") != "A" {
		t.Errorf("finished %v, want A", *finished)
	}
}

// A compaction far behind continues as new after its rounds, carrying
// its totals.
func TestCompactContinuesAsNewWhenMoreIsPending(t *testing.T) {
	env, _ := compactEnv(t)
	n := 0
	env.OnActivity(payload.PendingLoads, mock.Anything, mock.Anything).Return(func(context.Context, payload.PendingLoadsInput) (payload.PendingLoadsResult, error) {
		n++
		return payload.PendingLoadsResult{Loads: []payload.PendingLoad{pendingLoad("L" + string(rune('a'+n)))}, More: true}, nil
	})
	env.OnActivity(payload.MergeLoads, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.CheckLoads, mock.Anything, mock.Anything).Return(func(_ context.Context, ids []string) (map[string]payload.Completeness, error) {
		return map[string]payload.Completeness{ids[0]: complete}, nil
	})
	env.ExecuteWorkflow(workflows.Compact, workflows.CompactInput{})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("err %v, want continue-as-new", err)
	}
	if n != 10 {
		t.Errorf("%d rounds before continuing as new, want 10", n)
	}
}

// A failure that is not a load's own (BigQuery away, past its retries)
// ends the run with the loads still pending, for the next run: no load
// is committed alone, none is named to replay.
func TestCompactLeavesLoadsPendingWhenBigQueryFails(t *testing.T) {
	env, finished := compactEnv(t)
	env.OnActivity(payload.PendingLoads, mock.Anything, mock.Anything).Return(
		payload.PendingLoadsResult{Loads: []payload.PendingLoad{pendingLoad("A"), pendingLoad("B")}}, nil).Once()
	env.OnActivity(payload.MergeLoads, mock.Anything, mock.Anything).Return(
		temporal.NewApplicationError("backend error", "wrapError")) // retryable: until its attempts run out
	env.ExecuteWorkflow(workflows.Compact, workflows.CompactInput{})
	err := env.GetWorkflowError()
	if err == nil || strings.Contains(err.Error(), "replay") {
		t.Fatalf("err %v, want the BigQuery failure, no load to replay", err)
	}
	if len(*finished) != 0 {
		t.Errorf("finished %v, want none", *finished)
	}
}
