package integration

import (
	"context"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/workflows"
)

// TestQuarantineReplayAfterAStaleGatewayList: a load while the API's
// gateway list misses one gateway quarantines that gateway's valid events
// (rule "must be a known gateway"); once the list is fixed, a quarantine
// replay promotes exactly those, once; a second replay promotes nothing;
// the source sending them again leaves them single; reconcile sees no gap.
// The stale load is a CSV export, so quarantined CSV rows go back through
// the CSV decoder.
func TestQuarantineReplayAfterAStaleGatewayList(t *testing.T) {
	s := newStack(t, simConfig(), true)
	ctx := context.Background()
	since, until := s.historyWindow()
	gws := s.sim.Gateways()
	hidden := gws[len(gws)-1].ID
	s.sim.SetFaults(ktsim.Faults{HiddenGateways: 1})

	var loaded workflows.ExportLoadResult
	if err := s.run("export-stale-"+s.tq, workflows.ExportLoad, workflows.ExportLoadInput{Since: since, Until: until, Format: "csv", Tuning: s.tuning}, &loaded); err != nil {
		t.Fatal(err)
	}
	truth := s.sim.Truth(since, until)
	fact, err := s.wh.FactIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	quarantined, err := s.wh.QuarantinedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var missing int
	for _, id := range truth.Valid {
		if fact[id] == 0 {
			missing++
			if r := quarantined[id]; len(r) != 1 || r[0] != "gateway_id: must be a known gateway" {
				t.Fatalf("valid event %s missing from fact, quarantined as %v", id, r)
			}
		}
	}
	if missing == 0 {
		t.Fatalf("the stale list quarantined no valid event (hidden gateway %s)", hidden)
	}
	t.Logf("stale gateway list: %d valid events quarantined", missing)

	s.sim.SetFaults(ktsim.Faults{})
	in := workflows.QuarantineReplayInput{BatchSize: 100, Tuning: s.tuning}
	var res workflows.QuarantineReplayResult
	if err := s.run("quarantine-replay-1-"+s.tq, workflows.QuarantineReplay, in, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("first quarantine replay: %+v", res)
	if res.Promoted != int64(missing) || res.Batches < 2 {
		t.Fatalf("promoted %d in %d batches, want %d in batches of 100", res.Promoted, res.Batches, missing)
	}
	recordHistory(t, s.lastRun.GetID(), s.lastRun.GetRunID(), "quarantine_replay")
	s.assertExactlyOnce(since, until)

	if err := s.run("quarantine-replay-2-"+s.tq, workflows.QuarantineReplay, in, &res); err != nil {
		t.Fatal(err)
	}
	if res.Promoted != 0 || res.StillInvalid != res.Selected-res.Unreadable-res.Skipped {
		t.Fatalf("second quarantine replay: %+v, want nothing promoted", res)
	}
	s.assertExactlyOnce(since, until)

	// The source sends every event again (another format): still single.
	var again workflows.ReplayResult
	if err := s.run("replay-window-"+s.tq, workflows.Replay, workflows.ReplayInput{Since: since, Until: until, Format: "ndjson", Tuning: s.tuning}, &again); err != nil {
		t.Fatal(err)
	}
	s.assertExactlyOnce(since, until)

	var rec workflows.ReconcileResult
	if err := s.run("reconcile-"+s.tq, workflows.Reconcile, workflows.ReconcileInput{Since: since, Until: until, Step: 24 * time.Hour, Tuning: s.tuning}, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Gaps) != 0 {
		t.Fatalf("reconcile after the promotion: gaps %+v", rec.Gaps)
	}
}
