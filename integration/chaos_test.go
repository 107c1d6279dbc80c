package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/chaos"
	"github.com/ktpipe/ktpipe/workflows"
)

// TestChaosSoak is the chaos soak (cmd/ktchaos) made short: over a
// backfill, scheduled pulls and webhook deliveries at once, three worker
// SIGKILLs, a dev server restart, an API restart and a few seconds each
// of 500s, hangs and 429 storms. Then every valid event is in the fact
// table exactly once, every invalid one quarantined, and no workflow is
// left open. It starts its own dev server (it restarts it) and stops by
// itself: every wait of the soak is bounded, the whole by Timeout.
func TestChaosSoak(t *testing.T) {
	bin := buildWorker(t)
	o := chaos.DefaultOptions()
	o.Dir, o.WorkerCommand, o.Out = t.TempDir(), []string{bin}, logWriter{t}
	o.Seed = 11
	o.Events, o.Days, o.LiveRate = 1000, 2, 2
	o.Kills, o.TemporalRestarts, o.SimRestarts = 3, 1, 1
	o.FaultPhase, o.Hang, o.SimDown = 6*time.Second, 10*time.Second, 2*time.Second
	o.MinGap, o.MaxGap, o.RecoveryBound = 500*time.Millisecond, 3*time.Second, time.Minute
	o.PullInterval, o.WebhookBatch, o.ChunkRows = 20*time.Second, 15*time.Second, 300
	// Short heartbeat timeouts, as the other integration tests use, so
	// the kills cost seconds; the command measures the production ones.
	o.Tuning = workflows.Tuning{PollInterval: 200 * time.Millisecond, MaxPollInterval: time.Second, HeartbeatTimeout: 3 * time.Second}
	// A kill that interrupts an API activity (no heartbeat timeout) costs
	// its 2 min StartToClose today: the drain allows for that.
	o.Drain, o.Timeout = 8*time.Minute, 14*time.Minute

	r, err := chaos.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems() {
		t.Error(p)
	}
	// The chaos happened as planned, or the pass proves little.
	kinds := map[string]int{}
	for _, a := range r.Actions {
		kinds[a.Kind]++
	}
	want := map[string]int{chaos.KindKill: 3, chaos.KindTemporalRestart: 1, chaos.KindAPIRestart: 1, chaos.KindFaults: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s actions, want %d", kinds[k], k, n)
		}
	}
	// Each phase triggers a pull (or follows one running), so requests
	// meet the faults: over the whole soak some must have been faulted.
	if r.API.Errors+r.API.Hung+r.API.RateLimited+r.API.Dropped == 0 {
		t.Errorf("faults injected %+v: want some 500s, hangs or 429s", r.API)
	}
	if r.Webhooks.Delivered == 0 || r.Backfill.Loaded == 0 || r.Workflows["IncrementalPull"]["completed"] < 2 {
		t.Errorf("webhooks %+v, backfill %+v, workflows %v: want deliveries, loaded windows and several pulls",
			r.Webhooks, r.Backfill, r.Workflows)
	}
	// After a final audit, status reads everything, nothing runs, and it
	// names what happened: the invalid events the soak sent are schema
	// violations; nothing is doubled.
	for _, want := range []string{"running: 0", "KtpipeSchemaViolations"} {
		if !strings.Contains(r.Status, want) {
			t.Errorf("status after the drain lacks %q:\n%s", want, r.Status)
		}
	}
	for _, bad := range []string{"COULD NOT READ", "KtpipeDuplicateEvents"} {
		if strings.Contains(r.Status, bad) {
			t.Errorf("status after the drain says %q:\n%s", bad, r.Status)
		}
	}
}

// logWriter sends the soak's account to the test log, line by line.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
