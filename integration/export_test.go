package integration

import (
	"context"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/workflows"
)

func TestExportLoadExactlyOnceUnderFaults(t *testing.T) {
	cfg := simConfig()
	cfg.Faults = ktsim.Faults{ErrorRate: 0.1, RateLimitRate: 0.05, DropRate: 0.5, ResendRate: 1}
	s := newStack(t, cfg, true)
	since, until := s.historyWindow()
	in := workflows.ExportLoadInput{Since: since, Until: until, Format: "ndjson", Gzip: true, Tuning: s.tuning}
	var res workflows.ExportLoadResult
	if err := s.run("export-"+s.tq, workflows.ExportLoad, in, &res); err != nil {
		t.Fatal(err)
	}
	truth := s.sim.Truth(since, until)
	distinct := int64(len(truth.Valid) + len(truth.Invalid))
	if res.Records != res.RowCount || res.Rows+res.Quarantined+res.Resent != res.Records || res.Chunks < 3 {
		t.Fatalf("result %+v: want records = row_count = rows + quarantined + resent, several chunks", res)
	}
	if res.RowCount <= distinct {
		t.Fatalf("the export held %d records for %d events: the resend fault did not fire", res.RowCount, distinct)
	}
	s.assertExactlyOnce(since, until)
	recordHistory(t, s.lastRun.GetID(), s.lastRun.GetRunID(), "export_load")

	// The source resends the whole window (a second export of it): the
	// fact table must not change.
	in.Format, in.Gzip = "csv", false
	if err := s.run("export-again-"+s.tq, workflows.ExportLoad, in, &res); err != nil {
		t.Fatal(err)
	}
	s.assertExactlyOnce(since, until)
}

func TestExportLoadSurvivesFailedExports(t *testing.T) {
	cfg := simConfig()
	cfg.Faults = ktsim.Faults{ExportFailRate: 1}
	s := newStack(t, cfg, true)
	since, until := s.historyWindow()
	// Every export fails until the fault clears; the workflow creates new
	// exports (new idempotency keys) instead of giving up at once.
	go func() {
		time.Sleep(700 * time.Millisecond)
		s.sim.SetFaults(ktsim.Faults{})
	}()
	var res workflows.ExportLoadResult
	if err := s.run("export-"+s.tq, workflows.ExportLoad, workflows.ExportLoadInput{Since: since, Until: until, Format: "json", Tuning: s.tuning}, &res); err != nil {
		t.Fatal(err)
	}
	if res.LoadID == "" || res.Rows == 0 {
		t.Fatalf("result %+v", res)
	}
	s.assertExactlyOnce(since, until)
	recordHistory(t, s.lastRun.GetID(), s.lastRun.GetRunID(), "export_load_failed_exports")
	exps, err := s.acts.API.ListExports(context.Background(), "failed", 10)
	if err != nil || len(exps) == 0 {
		t.Fatalf("want at least one failed export before the good one: %v %v", exps, err)
	}
}

// TestExportLoadGrowsChunksByRowCount: an export larger than its chunk
// bound (Activities.ExportChunks, here 8; by default
// warehouse.MaxBatchChunks) in chunks of KTPIPE_CHUNK_ROWS
// (here 50) is split, by the row_count the server reports, into larger
// chunks that keep it within the bound; they stage, commit and land
// exactly once.
func TestExportLoadGrowsChunksByRowCount(t *testing.T) {
	const most = 8
	s := newStack(t, simConfig(), false)
	s.acts.ChunkRows, s.acts.ExportChunks = 50, most
	s.startWorkers()
	since, until := s.historyWindow()
	var res workflows.ExportLoadResult
	if err := s.run("export-"+s.tq, workflows.ExportLoad, workflows.ExportLoadInput{Since: since, Until: until, Format: "ndjson", Tuning: s.tuning}, &res); err != nil {
		t.Fatal(err)
	}
	if res.RowCount <= 2*most*50 || res.Chunks > most || res.Chunks < most/2 {
		t.Fatalf("result %+v: want more than %d records in %d to %d chunks", res, 2*most*50, most/2, most)
	}
	s.assertExactlyOnce(since, until)
}
