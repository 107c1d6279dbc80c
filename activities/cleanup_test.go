package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
)

func TestSweepRuleSelectsOnlyOldUnreferencedFiles(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cutoff := now.Add(-DefaultStagingRetention)
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Hour)
	// An export load still running for 9 days (its files are old), a
	// replay of a failed load, and a webhook batch that started long ago.
	running := OpenRun{WorkflowID: "ktpipe-export-20261101T000000Z-20261102T000000Z", RunID: "0c9f3a1b-aaaa-bbbb", Type: "ExportLoad", Start: now.Add(-9 * 24 * time.Hour)}
	replay := OpenRun{WorkflowID: "ktpipe-replay-ktpipe-backfill-x-w3-1234abcd-g0", RunID: "ffff0000", Type: "Replay", Start: now}
	batch := OpenRun{WorkflowID: "ktpipe-webhooks-20261120T100000Z", RunID: "12345678", Type: "WebhookBatch", Start: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	scheduled := OpenRun{WorkflowID: "ktpipe-incremental-pull-2026-11-29T11:00:00Z", RunID: "abcdef0123", Type: "IncrementalPull", Start: now}
	rule := newSweepRule(cutoff, []OpenRun{running, replay, batch, scheduled})
	runningLoad := "ktpipe-export-20261101T000000Z-20261102T000000Z-0c9f3a1b-g0"
	pullLoad := "ktpipe-incremental-pull-2026-11-29T11_00_00Z-abcdef01-3" // ':' made staging-safe
	tests := []struct {
		key  string
		mod  time.Time
		want decisionKind
	}{
		{"loads/failed-load/chunk-00000.ndjson", old, removedLoad},
		{"loads/failed-load/manifest.json", old, removedLoad},
		{"exports/failed-load/exp1.data.part", old, removedLoad},
		{"loads/" + runningLoad + "/chunk-00000.ndjson", old, keptRunning},
		{"exports/" + runningLoad + "/exp9.data.part", old, keptRunning},
		{"loads/" + pullLoad + "/chunk-00000.ndjson", old, keptRunning},
		{"loads/ktpipe-backfill-x-w3-1234abcd-g0/manifest.json", old, keptRunning}, // being replayed
		// A load goes whole or not at all: one recent file keeps it all.
		{"loads/mixed-load/chunk-00000.ndjson", old, keptRecent},
		{"loads/mixed-load/chunk-00001.ndjson", recent, keptRecent},
		{"loads/recent-load/chunk-00000.ndjson", recent, keptRecent},
		{"loads/failed-load/.tmp-123", old, removedLoad},
		{".upload-4242", old, removedTemp},
		{".upload-4243", recent, keptRecent},
		{"webhooks/.tmp-99", old, removedTemp},
		// Written after the open batch started (+1h): that batch may hold it.
		{"webhooks/aa.json", batch.Start.Add(30 * time.Minute), keptRunning},
		// Written long before it: signalled to an earlier batch, now closed.
		{"webhooks/bb.json", batch.Start.Add(-48 * time.Hour), removedDelivery},
		// A load waiting for the compaction, and its mark, stay however old.
		{"loads/pending-load/chunk-00000.ndjson", old, keptRunning},
		{"pending/pending-load/load.json", old, keptRunning},
		{"pending/pending-load/.tmp-7", old, keptUnknown},
		{"notes/readme.txt", old, keptUnknown},
		{"notes/.tmp-1", old, keptUnknown},
		{"manifest.json", old, keptUnknown},
	}
	var entries []staging.Entry
	for _, tt := range tests {
		entries = append(entries, staging.Entry{Key: tt.key, ModTime: tt.mod})
	}
	for _, e := range entries {
		if !rule.observe(e) {
			t.Fatal("observe refused")
		}
	}
	for _, tt := range tests {
		if got := rule.decide(staging.Entry{Key: tt.key, ModTime: tt.mod}); got.kind != tt.want {
			t.Errorf("%s (modified %s): decision %d, want %d", tt.key, tt.mod.Format(time.RFC3339), got.kind, tt.want)
		}
	}
	// Without the batch open, that delivery goes too.
	noBatch := newSweepRule(cutoff, []OpenRun{running})
	if got := noBatch.decide(staging.Entry{Key: "webhooks/aa.json", ModTime: batch.Start.Add(30 * time.Minute)}); got.kind != removedDelivery {
		t.Errorf("old delivery with no batch open: decision %d", got.kind)
	}
}

func TestLoadIDPrefixMatchesWorkflowLoadIDs(t *testing.T) {
	// workflows.loadID(id, run[:8], part) for the shapes workflow ids take.
	for _, tt := range []struct{ wf, run, want string }{
		{"ktpipe-export-20261101T000000Z-20261102T000000Z", "0c9f3a1b-rest", "ktpipe-export-20261101T000000Z-20261102T000000Z-0c9f3a1b-"},
		{"ktpipe-incremental-pull-2026-11-29T11:00:00Z", "abcdef0123", "ktpipe-incremental-pull-2026-11-29T11_00_00Z-abcdef01-"},
		{".odd queue-x", "12345678", "Lodd_queue-x-12345678-"},
	} {
		if got := LoadIDPrefix(tt.wf, tt.run); got != tt.want {
			t.Errorf("LoadIDPrefix(%q, %q) = %q, want %q", tt.wf, tt.run, got, tt.want)
		}
	}
}

// A clean-up pass stops removing at its stop time (before its activity's
// deadline) and says there is more, rather than being cut off by the
// timeout and starting over; the next pass removes the rest.
func TestCleanupStopsBeforeItsDeadline(t *testing.T) {
	store := staging.Dir{Root: t.TempDir()}
	old := time.Now().Add(-30 * 24 * time.Hour)
	for i := range 5 {
		p := filepath.Join(store.Root, fmt.Sprintf(".tmp-%d", i))
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	clock := start
	c := &Cleaner{Store: store, Now: func() time.Time { clock = clock.Add(time.Minute); return clock }}
	var s testsuite.WorkflowTestSuite
	pass := func(stopAt time.Time) payload.CleanupResult {
		t.Helper()
		env := s.NewTestActivityEnvironment()
		env.RegisterActivityWithOptions(func(ctx context.Context) (payload.CleanupResult, error) {
			rule := newSweepRule(start.Add(-DefaultStagingRetention), nil)
			return c.remove(ctx, store, rule, stopAt)
		}, activity.RegisterOptions{Name: "pass"})
		v, err := env.ExecuteActivity("pass")
		if err != nil {
			t.Fatal(err)
		}
		var res payload.CleanupResult
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	// The clock moves a minute a look: two removals before the stop.
	if res := pass(start.Add(150 * time.Second)); res.Files != 2 || !res.More {
		t.Fatalf("first pass removed %d (more %v), want 2 and more", res.Files, res.More)
	}
	if res := pass(time.Time{}); res.Files != 3 || res.More {
		t.Fatalf("second pass removed %d (more %v), want the other 3", res.Files, res.More)
	}
}
