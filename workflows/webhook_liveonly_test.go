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
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/workflows"
)

// liveOnlyRun mocks a live-only WebhookBatch's activities. Nothing that
// loads is mocked, so a split, stage or commit fails the batch.
type liveOnlyRun struct {
	mu      sync.Mutex
	landed  []string        // delivery keys, in the order landings streamed them
	gone    []string        // keys a landing found removed
	removed map[string]bool // delivery files RemoveStaged took
	fail    int             // landings still to fail, each after its attempts
}

func newLiveOnlyRun(env *testsuite.TestWorkflowEnvironment, landingTakes time.Duration, fail int) *liveOnlyRun {
	r := &liveOnlyRun{removed: map[string]bool{}, fail: fail}
	env.RegisterWorkflow(workflows.WebhookBatch)
	env.OnActivity(payload.FetchGateways, mock.Anything).Return([]payload.Gateway{{ID: "g"}}, nil)
	env.OnActivity(payload.LandLive, mock.Anything, mock.Anything).After(landingTakes).Return(
		func(ctx context.Context, in payload.LandLiveInput) (payload.LandLiveResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.fail > 0 {
				if activity.GetInfo(ctx).Attempt == 3 { // the landing gave up
					r.fail--
				}
				return payload.LandLiveResult{}, errors.New("streaming unavailable")
			}
			var res payload.LandLiveResult
			for _, k := range in.Keys {
				if r.removed[k] {
					r.gone = append(r.gone, k)
					res.Gone++
					continue
				}
				r.landed = append(r.landed, k)
				res.Rows++
			}
			return res, nil
		})
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

func (r *liveOnlyRun) check(t *testing.T, env *testsuite.TestWorkflowEnvironment, wantLanded string, wantDeliveries int) {
	t.Helper()
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.WebhookBatchResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	landed := slices.Clone(r.landed)
	slices.Sort(landed)
	if got := strings.Join(landed, " "); got != wantLanded {
		t.Errorf("streamed %q, want %q: each delivery once", got, wantLanded)
	}
	if len(r.gone) > 0 {
		t.Errorf("landings found %v removed before they streamed them", r.gone)
	}
	for _, k := range strings.Fields(wantLanded) {
		if !r.removed[k] {
			t.Errorf("%s was not removed after its landing", k)
		}
	}
	if res.Deliveries != wantDeliveries || res.Rows != 0 || res.LiveRows != int64(len(landed)) {
		t.Errorf("result %+v, want %d deliveries, no rows loaded, %d streamed", res, wantDeliveries, len(landed))
	}
}

func runLiveOnly(env *testsuite.TestWorkflowEnvironment) {
	env.ExecuteWorkflow(workflows.WebhookBatch, workflows.WebhookBatchInput{Window: time.Minute, Defer: true, LiveOnly: true})
}

// A live-only batch streams its deliveries and removes their files: it
// splits, stages and commits nothing (none of those activities is mocked).
func TestLiveOnlyWebhookBatchLoadsNothing(t *testing.T) {
	env := newEnv(t)
	r := newLiveOnlyRun(env, time.Second, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 10*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/b.json") }, 59*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 30*time.Second) // a resend
	runLiveOnly(env)
	r.check(t, env, "webhooks/a.json webhooks/b.json", 2)
}

// A landing that gave up is streamed once more before the files go; the
// deliveries landed before it are not.
func TestLiveOnlyWebhookBatchStreamsAgainWhatALandingMissed(t *testing.T) {
	env := newEnv(t)
	r := newLiveOnlyRun(env, 0, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 10*time.Second)
	env.RegisterDelayedCallback(func() {
		r.mu.Lock()
		r.fail = 1
		r.mu.Unlock()
		env.SignalWorkflow(workflows.DeliverySignal, "webhooks/b.json")
	}, 30*time.Second)
	runLiveOnly(env)
	r.check(t, env, "webhooks/a.json webhooks/b.json", 2)
}

// A delivery whose landing and its second try both gave up is left to the
// pull: the batch still ends, and removes its file.
func TestLiveOnlyWebhookBatchEndsWhenTheSecondTryFailsToo(t *testing.T) {
	env := newEnv(t)
	r := newLiveOnlyRun(env, 0, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 10*time.Second)
	env.RegisterDelayedCallback(func() {
		r.mu.Lock()
		r.fail = 2
		r.mu.Unlock()
		env.SignalWorkflow(workflows.DeliverySignal, "webhooks/b.json")
	}, 30*time.Second)
	runLiveOnly(env)
	r.check(t, env, "webhooks/a.json", 2)
	if !r.removed["webhooks/b.json"] {
		t.Error("b's file was kept: the pull brings its events, nothing would remove it")
	}
}

// A delivery signalled while the batch waits for its last landing, after
// the window, is streamed by a round of its own.
func TestLiveOnlyWebhookBatchStreamsDeliveriesSignalledAfterItsLastLanding(t *testing.T) {
	env := newEnv(t)
	r := newLiveOnlyRun(env, 5*time.Second, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 58*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/b.json") }, 62*time.Second)
	runLiveOnly(env)
	r.check(t, env, "webhooks/a.json webhooks/b.json", 2)
}

// A live-only batch without a live landing (KTPIPE_WEBHOOK_LIVE 0, which
// the configuration refuses) loads its deliveries rather than drop them.
func TestLiveOnlyWebhookBatchWithoutLandingsLoads(t *testing.T) {
	env := newEnv(t)
	r := newDeferredRun(env, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.DeliverySignal, "webhooks/a.json") }, 10*time.Second)
	env.ExecuteWorkflow(workflows.WebhookBatch, workflows.WebhookBatchInput{Window: time.Minute, LiveEvery: -1, Defer: true, LiveOnly: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got := r.loads; len(got) != 1 {
		t.Errorf("loads %v, want a's", got)
	}
}
