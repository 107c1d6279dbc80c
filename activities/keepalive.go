package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// keepAlive heartbeats every third of the activity's heartbeat timeout
// until stop is called. A BigQuery statement or load job can run longer
// than the timeout while the worker is perfectly alive; the heartbeat says
// "alive", and the details (progress, when given) let a retry resume. A
// worker that dies stops heartbeating and is noticed within the timeout.
func keepAlive(ctx context.Context, details func() any) (stop func()) {
	timeout := activity.GetInfo(ctx).HeartbeatTimeout
	if timeout <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(timeout / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if details != nil {
					activity.RecordHeartbeat(ctx, details())
				} else {
					activity.RecordHeartbeat(ctx)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
