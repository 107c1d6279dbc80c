package workflows_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// deferredRun mocks a deferred WebhookBatch's load tail over a fake
// staging store; the test mocks LandLive (land reads removed).
type deferredRun struct {
	mu       sync.Mutex
	loads    map[string]string // load id: its delivery keys, joined by +
	streamed []string          // load ids LandLiveChunks streamed
	removed  map[string]bool   // delivery files RemoveStaged took
}

func newDeferredRun(env *testsuite.TestWorkflowEnvironment, splitTakes time.Duration) *deferredRun {
	r := &deferredRun{loads: map[string]string{}, removed: map[string]bool{}}
	env.RegisterWorkflow(workflows.WebhookBatch)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	env.OnActivity(payload.SplitStaged, mock.Anything, mock.Anything).After(splitTakes).Return(
		func(_ context.Context, in payload.SplitStagedInput) (payload.SplitStagedResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.loads[in.LoadID] = strings.Join(in.Keys, "+")
			m := manifest
			m.LoadID = in.LoadID
			return payload.SplitStagedResult{Manifest: m}, nil
		})
	env.OnActivity(payload.StageChunk, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.DeferLoad, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(payload.LandLiveChunks, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in payload.ChunksInput) (int64, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.streamed = append(r.streamed, in.LoadID)
			return 9, nil
		}).Maybe()
	env.OnActivity(payload.RemoveStaged, mock.Anything, mock.Anything).Return(
		func(_ context.Context, keys []string) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, k := range keys {
				r.removed[k] = true
			}
			return nil
		})
	return r
}

// streamedKeys is the delivery keys of the loads LandLiveChunks streamed.
func (r *deferredRun) streamedKeys() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for _, id := range r.streamed {
		keys = append(keys, r.loads[id])
	}
	slices.Sort(keys)
	return strings.Join(keys, " ")
}

func runDeferred(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
	t.Helper()
	env.ExecuteWorkflow(workflows.WebhookBatch, workflows.WebhookBatchInput{Window: time.Minute, Defer: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

// A deferred batch whose landing gave up streams its load's chunks: its
// deliveries would otherwise miss the live view until the compaction.
func TestDeferredWebhookBatchStreamsItsLoadWhenALandingGaveUp(t *testing.T) {
	env := newEnv(t)
	r := newDeferredRun(env, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 10*time.Second)
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).Return(payload.LandLiveResult{}, errors.New("streaming unavailable"))
	runDeferred(t, env)
	if got := r.streamedKeys(); got != "webhooks/a.json" {
		t.Errorf("LandLiveChunks streamed the loads of %q, want a's once", got)
	}
}

// A deferred batch waits for its last landing before it removes the
// delivery files, which the landing would otherwise find gone; a landing
// that succeeded is not streamed again.
func TestDeferredWebhookBatchWaitsForItsLastLanding(t *testing.T) {
	env := newEnv(t)
	r := newDeferredRun(env, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 59*time.Second)
	var gone int
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).After(30 * time.Second).Return(
		func(_ context.Context, in payload.LandLiveInput) (payload.LandLiveResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			var res payload.LandLiveResult
			for _, k := range in.Keys {
				if r.removed[k] {
					res.Gone++
					gone++
				} else {
					res.Rows++
				}
			}
			return res, nil
		})
	runDeferred(t, env)
	if gone != 0 {
		t.Errorf("the last landing found %d delivery files gone", gone)
	}
	if got := r.streamedKeys(); got != "" {
		t.Errorf("LandLiveChunks streamed the loads of %q, want none: the landing streamed them", got)
	}
}

// A delivery signalled after the window's last landing is streamed with
// its load's chunks; the loads whose deliveries were landed are not.
func TestDeferredWebhookBatchStreamsDeliveriesSignalledAfterItsLastLanding(t *testing.T) {
	env := newEnv(t)
	r := newDeferredRun(env, 5*time.Second) // b arrives while a's load splits
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 10*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/b.json") }, 62*time.Second)
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).Return(payload.LandLiveResult{Rows: 1}, nil)
	runDeferred(t, env)
	if got := r.streamedKeys(); got != "webhooks/b.json" {
		t.Errorf("LandLiveChunks streamed the loads of %q, want b's alone", got)
	}
}
