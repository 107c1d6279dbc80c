package main

import (
	"bytes"
	"context"
	"io"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// stageChunk stages chunk c of loadID (its rows and its quarantine
// records) from store, as StageChunk does.
func stageChunk(ctx context.Context, wh *warehouse.Warehouse, store staging.Dir, loadID string, c staging.Chunk) error {
	rows, err := store.Open(ctx, c.Key)
	if err != nil {
		return err
	}
	defer rows.Close()
	files := warehouse.ChunkFiles{Rows: rows}
	if c.QuarantineKey != "" {
		q, err := store.Open(ctx, c.QuarantineKey)
		if err != nil {
			return err
		}
		defer q.Close()
		files.Quarantine = q
	}
	return wh.StageChunk(ctx, loadID, c, files)
}

// emulatorWarehouse starts the BigQuery emulator and creates ktpipe's
// schema in dataset on it; stop closes the client and the emulator.
func emulatorWarehouse(ctx context.Context, dataset string) (wh *warehouse.Warehouse, bq *bigquery.Client, stop func(), err error) {
	emu, err := devstack.StartEmulator(ctx, "ktbench", io.Discard)
	if err != nil {
		return nil, nil, nil, err
	}
	if bq, err = emu.Client(ctx); err != nil {
		emu.Stop()
		return nil, nil, nil, err
	}
	stop = func() { bq.Close(); emu.Stop() }
	if wh, err = warehouse.New(bq, "ktbench", dataset, "US"); err == nil {
		_, err = wh.EnsureSchema(ctx)
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return wh, bq, stop, nil
}

// splitNDJSON decodes, validates and splits NDJSON events into chunks in
// store, as SplitExport does.
func splitNDJSON(ctx context.Context, store staging.Dir, ndjson []byte, o staging.SplitOptions) (staging.Manifest, error) {
	dec, err := schemas.NewDecoder(bytes.NewReader(ndjson), schemas.FormatNDJSON, false)
	if err != nil {
		return staging.Manifest{}, err
	}
	sp, err := staging.NewSplitter(o, staging.StoreSink(ctx, store))
	if err != nil {
		return staging.Manifest{}, err
	}
	if err := sp.Add(dec); err != nil {
		return staging.Manifest{}, err
	}
	return sp.Close()
}
