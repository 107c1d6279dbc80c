package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/staging"
)

// benchWarehouse measures the load path and the dedup commit on the
// BigQuery emulator: stage (load job) and commit (guarded inserts) for
// chunks of chunkRows, growing the fact table to each size in sizes, then
// a resend-heavy chunk (half new, half already loaded) at that size.
func benchWarehouse(ctx context.Context, out io.Writer, sizes []int, chunkRows int) error {
	wh, bq, stop, err := emulatorWarehouse(ctx, "bench")
	if err != nil {
		return err
	}
	defer stop()
	dir, err := os.MkdirTemp("", "ktbench-wh")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store := staging.Dir{Root: dir}
	maxRows := sizes[len(sizes)-1] + chunkRows
	var buf bytes.Buffer
	if err := ktsim.WriteFile(&buf, ktsim.FileOptions{Events: maxRows, Format: "ndjson", Seed: 9}); err != nil {
		return err
	}
	lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))

	fmt.Fprintf(out, "BigQuery emulator %s, chunks of %d rows\n", devstack.BQEmulatorVersion, chunkRows)
	fmt.Fprintf(out, "%-44s %10s %10s %10s\n", "step", "rows", "seconds", "rows/s")
	report := func(step string, rows int, d time.Duration) {
		fmt.Fprintf(out, "%-44s %10d %10.2f %10.0f\n", step, rows, d.Seconds(), float64(rows)/d.Seconds())
	}
	split := func(loadID string, from, to int) (staging.Manifest, error) {
		return splitNDJSON(ctx, store, bytes.Join(lines[from:to], nil),
			staging.SplitOptions{LoadID: loadID, Source: "bench", ChunkRows: chunkRows, IngestedAt: time.Now()})
	}
	load := func(loadID string, man staging.Manifest) (stage, commit time.Duration, err error) {
		for _, c := range man.Chunks {
			t0 := time.Now()
			if err := stageChunk(ctx, wh, store, loadID, c); err != nil {
				return 0, 0, err
			}
			t1 := time.Now()
			if err := wh.CommitChunk(ctx, loadID, "bench", c); err != nil {
				return 0, 0, err
			}
			stage += t1.Sub(t0)
			commit += time.Since(t1)
			if err := wh.DropStaging(ctx, loadID, c.Index); err != nil {
				return 0, 0, err
			}
		}
		return stage, commit, nil
	}

	loaded := 0
	for i, size := range sizes {
		loadID := fmt.Sprintf("grow%d", i)
		man, err := split(loadID, loaded, size)
		if err != nil {
			return err
		}
		stage, commit, err := load(loadID, man)
		if err != nil {
			return err
		}
		report(fmt.Sprintf("stage: NDJSON load jobs, %d..%d", loaded, size), size-loaded, stage)
		report(fmt.Sprintf("commit: anti-join insert, fact %d..%d", loaded, size), size-loaded, commit)
		loaded = size
		// A chunk of which half is resent: what dedup costs at this size.
		half := chunkRows / 2
		man, err = split(fmt.Sprintf("resend%d", i), size-half, size+half)
		if err != nil {
			return err
		}
		_, commit, err = load(fmt.Sprintf("resend%d", i), man)
		if err != nil {
			return err
		}
		report(fmt.Sprintf("dedup commit, 50%% resent, fact at %d", size), chunkRows, commit)
		ids, err := wh.FactIDs(ctx)
		if err != nil {
			return err
		}
		for id, n := range ids {
			if n != 1 {
				return fmt.Errorf("event %s landed %d times", id, n)
			}
		}
		loaded = size + half
		if len(ids) != loaded {
			return fmt.Errorf("fact has %d ids, want %d", len(ids), loaded)
		}
	}

	// The alternative path, for comparison: streaming inserts (insertAll).
	n := min(chunkRows, 5000)
	rows := make([]*jsonRow, 0, n)
	for _, l := range lines[:n] {
		var m map[string]bigquery.Value
		if err := json.Unmarshal(bytes.TrimSpace(l), &m); err != nil {
			return err
		}
		rows = append(rows, &jsonRow{m})
	}
	t0 := time.Now()
	if err := bq.Dataset("bench").Table("raw_insertall").Create(ctx, &bigquery.TableMetadata{Schema: bigquery.Schema{{Name: "id", Type: bigquery.StringFieldType}, {Name: "timestamp", Type: bigquery.StringFieldType}, {Name: "user", Type: bigquery.StringFieldType}}}); err != nil {
		return err
	}
	if err := bq.Dataset("bench").Table("raw_insertall").Inserter().Put(ctx, rows); err != nil {
		return err
	}
	report("insertAll streaming (3 columns), for comparison", n, time.Since(t0))
	return context.Cause(ctx) // stopped while printing: its reader went away
}

type jsonRow struct{ m map[string]bigquery.Value }

func (r *jsonRow) Save() (map[string]bigquery.Value, string, error) {
	return map[string]bigquery.Value{"id": r.m["id"], "timestamp": r.m["timestamp"], "user": r.m["user"]}, "", nil
}
