package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// modelLoadID is a load id of the shape the hourly pull gives its loads
// (payload.LoadID of the scheduled workflow's id, its run id's first 8
// characters and the batch number), with the default task queue: the
// widths are measured on rows carrying it, as every row of raw, fact and
// staging carries its load's.
var modelLoadID = payload.LoadID("ktpipe-incremental-pull-2026-11-30T10:00:00Z", "5f3c9a1e", "12")

// runModel counts the statements of each path on the emulator at a small
// scale (a load of two chunks), measures column widths on generated
// events, and prints the model at each scale.
func runModel(ctx context.Context, out io.Writer, scales []float64, webhookBatch time.Duration) error {
	if webhookBatch < time.Second || webhookBatch > time.Hour {
		return fmt.Errorf("-model-webhook-batch %s: must be between 1s and 1h, as KTPIPE_WEBHOOK_BATCH", webhookBatch)
	}
	in := defaultModelInputs()
	in.WebhookBatches = int(math.Ceil(float64(24*time.Hour) / float64(webhookBatch)))
	const seed = 42
	// Small chunks, so one load has two, each with quarantined records as
	// a 50,000-row chunk at 1% invalid has.
	const chunkRows, events = 100, 200
	var file bytes.Buffer
	if err := ktsim.WriteFile(&file, ktsim.FileOptions{Events: events, Format: "ndjson", Seed: seed, InvalidRate: 0.1}); err != nil {
		return err
	}
	gateways := schemas.GatewaySet{}
	var dims []warehouse.Gateway
	for _, id := range ktsim.GatewayIDs(seed) {
		gateways[id] = true
		dims = append(dims, warehouse.Gateway{ID: id, Name: id})
	}
	dir, err := os.MkdirTemp("", "ktbench-model")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store := staging.Dir{Root: dir}

	split := func(loadID string, rows int) (staging.Manifest, error) {
		return splitNDJSON(ctx, store, file.Bytes(),
			staging.SplitOptions{LoadID: loadID, Source: "model", ChunkRows: rows, Gateways: gateways, IngestedAt: time.Now()})
	}
	man, err := split(modelLoadID, events)
	if err != nil {
		return err
	}
	w, err := measureWidths(ctx, store, man)
	if err != nil {
		return err
	}

	wh, _, stop, err := emulatorWarehouse(ctx, "model")
	if err != nil {
		return err
	}
	defer stop()
	var mu sync.Mutex
	var rec []warehouse.Statement
	wh.SetStatementObserver(func(s warehouse.Statement) {
		mu.Lock()
		rec = append(rec, s)
		mu.Unlock()
	})
	var stmts []observedStmt
	add := func(s warehouse.Statement, scope string) {
		if s.SQL == "" {
			stmts = append(stmts, observedStmt{Scope: scope, Job: true, Load: s.Load})
			return
		}
		for i, part := range splitScript(s.SQL) {
			stmts = append(stmts, observedStmt{Scope: scope, Job: i == 0, SQL: part})
		}
	}
	// recorded hands over the statements recorded since the last call.
	recorded := func() []warehouse.Statement {
		mu.Lock()
		defer mu.Unlock()
		all := rec
		rec = nil
		return all
	}
	take := func(scope string) {
		for _, s := range recorded() {
			add(s, scope)
		}
	}
	drop := func() { recorded() }
	// A commit counts each chunk's staging tables before it runs: those
	// counts are per chunk (the first chunk's stand for all), the rest
	// per commit.
	takeCommit := func() {
		for _, s := range recorded() {
			switch {
			case !strings.HasPrefix(s.What, "count "):
				add(s, "commit")
			case strings.HasSuffix(s.What, "_00000"):
				add(s, "chunk")
			}
		}
	}

	// One load: every chunk staged (the first chunk's statements stand
	// for every chunk), then merged as MergeLoad does (one batch commit,
	// then the staging tables dropped), then checked.
	load := func(loadID, source string) error {
		man, err := split(loadID, chunkRows)
		if err != nil {
			return err
		}
		if len(man.Chunks) < 2 || man.Chunks[0].Quarantined == 0 {
			return fmt.Errorf("model run: want 2 chunks with quarantined records, got %+v", man.Chunks)
		}
		for i, c := range man.Chunks {
			if err := stageChunk(ctx, wh, store, loadID, c); err != nil {
				return err
			}
			if i == 0 {
				take("chunk")
			} else {
				drop()
			}
		}
		if err := wh.CommitBatch(ctx, loadID, source, man.Chunks); err != nil {
			return err
		}
		takeCommit()
		for _, c := range man.Chunks {
			if err := wh.DropStaging(ctx, loadID, c.Index); err != nil {
				return err
			}
		}
		if _, err := wh.CheckLoad(ctx, loadID); err != nil {
			return err
		}
		take("load")
		return nil
	}
	refresh := func(scope string) error {
		// As activities.RefreshDimensions: the fold's count, then the
		// refresh (the fold itself does not run at this scale).
		if _, err := wh.FoldUsage(ctx); err != nil {
			return err
		}
		if err := wh.RefreshDimensions(ctx, dims, nil, nil); err != nil {
			return err
		}
		take(scope)
		return nil
	}
	paths := map[string][]observedStmt{}
	// ExportLoad: one load, then the dimensions.
	if err := load("model-export", "export"); err != nil {
		return err
	}
	if err := refresh("load"); err != nil {
		return err
	}
	paths["export"], stmts = stmts, nil
	// IncrementalPull: the cursor read once a run; each batch is a load
	// and a checkpoint; the dimensions once a run.
	if _, err := wh.Checkpoint(ctx, "model"); err != nil {
		return err
	}
	take("run")
	if err := load("model-pull", "pull"); err != nil {
		return err
	}
	if err := wh.SetCheckpoint(ctx, "model", "c1"); err != nil {
		return err
	}
	take("load")
	if err := refresh("run"); err != nil {
		return err
	}
	paths["pull"], stmts = stmts, nil
	// WebhookBatch: one load a window, then the dimensions.
	if err := load("model-webhook", "webhook"); err != nil {
		return err
	}
	if err := refresh("load"); err != nil {
		return err
	}
	paths["webhook"], stmts = stmts, nil
	// The compaction: a pull's load and a webhook batch's staged and
	// marked pending (both stream their rows into live_events, priced
	// with the live landing below), the pull's cursor read once a pull
	// run and its checkpoint once a pull load; then the compaction's run
	// commits both loads together, checks them, and refreshes the
	// dimensions.
	if err := modelCompaction(ctx, wh, store, split, chunkRows, recorded, add, refresh); err != nil {
		return err
	}
	paths["compacted"], stmts = stmts, nil
	if err := modelOperations(ctx, wh, in, take, drop); err != nil {
		return err
	}
	paths["operations"] = stmts

	fmt.Fprintf(out, "statements recorded on the emulator (%s), one load of 2 chunks per path:\n", devstack.BQEmulatorVersion)
	for _, p := range []string{"export", "pull", "webhook"} {
		n := map[string]int{}
		for _, s := range paths[p] {
			if s.Job {
				n[s.Scope]++
			}
		}
		fmt.Fprintf(out, "  %-8s jobs per chunk %d, per commit %d, per load %d, per run %d\n", p, n["chunk"], n["commit"], n["load"], n["run"])
	}
	fmt.Fprintln(out)
	if err := printModel(out, in, w, paths, scales); err != nil {
		return err
	}
	return context.Cause(ctx) // stopped while printing: its reader went away
}

// measureWidths computes BigQuery's average data size per column over the
// rows and quarantine rows the splitter wrote.
func measureWidths(ctx context.Context, store staging.Dir, man staging.Manifest) (widths, error) {
	w := widths{"event": {}, "quarantine": {}}
	for kind, schema := range map[string]bigquery.Schema{"event": bqschema.EventRowSchema(), "quarantine": bqschema.QuarantineSchema()} {
		var rows int
		for _, c := range man.Chunks {
			key := c.Key
			if kind == "quarantine" {
				key = c.QuarantineKey
			}
			if key == "" {
				continue
			}
			f, err := store.Open(ctx, key)
			if err != nil {
				return nil, err
			}
			dec := json.NewDecoder(f)
			for {
				var row map[string]any
				if err := dec.Decode(&row); err == io.EOF {
					break
				} else if err != nil {
					f.Close()
					return nil, err
				}
				rows++
				for _, fs := range schema {
					w[kind][fs.Name] += dataSize(fs, row[fs.Name])
				}
			}
			f.Close()
		}
		if rows == 0 {
			return nil, fmt.Errorf("model: no %s rows to measure", kind)
		}
		for k := range w[kind] {
			w[kind][k] /= float64(rows)
		}
	}
	// fact_ai_event: the event row and event_key, which the commit
	// computes (no staged value to measure): BYTES, 2 + 16.
	e := w["event"]
	w["fact"] = maps.Clone(e)
	w["fact"]["event_key"] = 18
	w["fact"]["_load"], w["fact"]["_chunk"] = 8, 8 // new_rows' (load, chunk), INT64
	// quarantine: the staged record and record_key, computed likewise.
	w["quarantine_table"] = maps.Clone(w["quarantine"])
	w["quarantine_table"]["record_key"] = 18
	// fact_usage: a row a (date, provider, model) a commit touched.
	w["usage"] = map[string]float64{"event_date": 8, "provider": e["provider"], "model": e["model"], "events": 8, "cost": 16, "tokens": 8,
		"load_id": e["load_id"], "chunk": 8}
	return w, nil
}

// dataSize is BigQuery's size of one value of field fs
// (https://cloud.google.com/bigquery/pricing#data).
func dataSize(fs *bigquery.FieldSchema, v any) float64 {
	if v == nil {
		return 0
	}
	if fs.Repeated {
		var t float64
		items, _ := v.([]any)
		one := *fs
		one.Repeated = false
		for _, it := range items {
			t += dataSize(&one, it)
		}
		return t
	}
	switch fs.Type {
	case bigquery.StringFieldType:
		s, _ := v.(string)
		return 2 + float64(len(s))
	case bigquery.NumericFieldType:
		return 16
	case bigquery.BooleanFieldType:
		return 1
	}
	return 8 // INT64, FLOAT64, DATE, TIMESTAMP
}

// modelCompaction records the compacted design's statements (see
// runModel): the scopes "chunk" (the pull's first chunk stands for every
// chunk of both paths), "pullrun", "pullload", "commit", "round" (a
// compaction round: a MergeLoads and its check) and "run" (a compaction
// run), through add.
func modelCompaction(ctx context.Context, wh *warehouse.Warehouse, store staging.Dir,
	split func(string, int) (staging.Manifest, error), chunkRows int,
	recorded func() []warehouse.Statement, add func(warehouse.Statement, string), refresh func(string) error) error {
	take := func(scope string) {
		for _, s := range recorded() {
			add(s, scope)
		}
	}
	if _, err := wh.Checkpoint(ctx, "model"); err != nil {
		return err
	}
	take("pullrun")
	var loads []warehouse.LoadChunks
	for _, l := range []struct{ id, source string }{{"model-cpull", "pull"}, {"model-cwebhook", "webhook"}} {
		man, err := split(l.id, chunkRows)
		if err != nil {
			return err
		}
		for i, c := range man.Chunks {
			if err := stageChunk(ctx, wh, store, l.id, c); err != nil {
				return err
			}
			if i == 0 && l.source == "pull" {
				take("chunk")
			} else {
				recorded()
			}
		}
		loads = append(loads, warehouse.LoadChunks{LoadID: l.id, Source: l.source, Chunks: man.Chunks})
	}
	if err := wh.SetCheckpoint(ctx, "model", "c2"); err != nil {
		return err
	}
	take("pullload")
	if err := wh.CommitLoads(ctx, loads); err != nil {
		return err
	}
	// The commit counts each chunk's staging tables: the pull's first
	// chunk's stand for every chunk's, as above.
	for _, s := range recorded() {
		switch {
		case !strings.HasPrefix(s.What, "count "):
			add(s, "commit")
		case strings.Contains(s.What, "cpull") && strings.HasSuffix(s.What, "_00000"):
			add(s, "chunk")
		}
	}
	var ids []string
	for _, l := range loads {
		ids = append(ids, l.LoadID)
		for _, c := range l.Chunks {
			if err := wh.DropStaging(ctx, l.LoadID, c.Index); err != nil {
				return err
			}
		}
	}
	if _, err := wh.CheckLoads(ctx, ids); err != nil {
		return err
	}
	take("round")
	if err := refresh("run"); err != nil {
		return err
	}
	return nil
}

// modelOperations records what operating ktpipe runs besides its loads,
// on the tables the paths filled, as a deployment with the compaction
// runs it: the audit as the Audit workflow makes it
// (activities.AuditWarehouse), in three scopes: "days", what an audit
// that counts its days adds (the fact's figures), "count", what it adds
// to count a day of hours from its completeness hours' start, and "audit", what every
// audit runs (commit_log's count, the
// latest audit, the live view's newest and the interval's measures,
// then its row appended), recorded on an audit that carries the counts;
// a day of the daily reconcile's windows (CountFactByWindow); and a worker's
// gauges (app.RefreshAuditGauges and RefreshCheckpointGauges, each
// priced at how often app.gaugeReads runs it).
func modelOperations(ctx context.Context, wh *warehouse.Warehouse, in modelInputs, take func(string), drop func()) error {
	// As app sets it with the compaction on; only the audit reads it
	// here (the live view, which EnsureSchema made, is not queried).
	wh.SetLiveWindow(warehouse.LiveWindowFor(in.CompactEvery))
	now := time.Now().UTC().Truncate(time.Microsecond) // as the audit table keeps it
	end := now.Add(-in.CompletenessDelay).Truncate(time.Hour)
	audit := payload.AuditWarehouseInput{
		Scope:        payload.AuditScope{Since: now.Truncate(24*time.Hour).AddDate(0, 0, -(in.AuditDays - 1)), IntervalStart: now.Add(-in.AuditEvery), IntervalEnd: now},
		Completeness: payload.Window{Since: end.Add(-time.Duration(in.CompletenessHours) * time.Hour), Until: end},
	}
	m, err := wh.MeasureFact(ctx, audit.Scope.Since)
	if err != nil {
		return fmt.Errorf("model: audit: %w", err)
	}
	take("days")
	hours, err := wh.CountHours(ctx, audit.Completeness.Since, int(payload.MaxCountedSpan/time.Hour))
	if err != nil {
		return fmt.Errorf("model: audit's count: %w", err)
	}
	take("count")
	// A whole read of the live view's window, once an hour.
	live, err := wh.MeasureLive(ctx, payload.LiveCount{}, now)
	if err != nil {
		return fmt.Errorf("model: the live view's window: %w", err)
	}
	take("livewhole")
	// The row of an audit that counted, for the next to carry.
	commits, err := wh.CountCommits(ctx, audit.Scope.Since)
	if err != nil {
		return fmt.Errorf("model: count commits: %w", err)
	}
	// The audit before, on the same day (an audit carries only its day's).
	counted := now.Add(-in.AuditEvery)
	if day := now.Truncate(24 * time.Hour); counted.Before(day) {
		counted = day
	}
	// The audits between read what was ingested since: as if the whole
	// read was half an hour ago (the average).
	live.LiveCountedAt, live.LiveNewestIngested = now.Add(-30*time.Minute), now
	if err := wh.AppendAudit(ctx, payload.AuditRow{AuditedAt: counted, WarehouseNewest: m.WarehouseNewest, FactRows: m.FactRows,
		CompletenessStart: audit.Completeness.Since, CompletenessEnd: audit.Completeness.Until,
		CountedAt: counted, CountedSince: audit.Scope.Since, CountedCommits: commits, CountedNewest: m.WarehouseNewest, CountedHours: hours, LiveCount: live}); err != nil {
		return fmt.Errorf("model: append audit: %w", err)
	}
	drop()
	res, err := wh.MeasureAudit(ctx, audit)
	if err != nil {
		return fmt.Errorf("model: audit: %w", err)
	}
	if !res.CountedAt.Equal(counted) {
		return fmt.Errorf("model: the audit counted again (at %s), want it to carry the counts of %s", res.CountedAt, counted)
	}
	if !res.LiveCountedAt.Equal(live.LiveCountedAt) {
		return fmt.Errorf("model: the audit read the live view's window whole (at %s), want the rows since %s", res.LiveCountedAt, live.LiveCountedAt)
	}
	if err := wh.AppendAudit(ctx, payload.AuditRow{AuditedAt: now, WarehouseNewest: res.WarehouseNewest, FactRows: res.FactRows,
		CountedAt: res.CountedAt, CountedSince: res.CountedSince, CountedCommits: res.CountedCommits}); err != nil {
		return fmt.Errorf("model: append audit: %w", err)
	}
	take("audit")
	// The daily reconcile's windows are whole hours, which group_by
	// counts: each is compared with its fact rows alone, a day's in one
	// query (CountFactByWindow).
	yesterday := now.Truncate(24*time.Hour).AddDate(0, 0, -1)
	if _, err := wh.CountFactByWindow(ctx, payload.Steps{Since: yesterday, Until: yesterday.Add(24 * time.Hour), Step: time.Hour}); err != nil {
		return fmt.Errorf("model: reconcile's count: %w", err)
	}
	take("reconcile")
	gauges := metrics.New()
	if _, err := app.RefreshAuditGauges(ctx, wh, gauges, now); err != nil {
		return fmt.Errorf("model: audit gauges: %w", err)
	}
	take("gaugeaudit")
	if _, err := app.RefreshCheckpointGauges(ctx, wh, gauges, now); err != nil {
		return fmt.Errorf("model: checkpoint gauges: %w", err)
	}
	take("gaugestate")
	return nil
}
