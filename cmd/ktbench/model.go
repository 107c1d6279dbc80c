package main

// The cost model (ktbench -model): what ktpipe's own statements cost on
// BigQuery's on-demand pricing, per day, at 1M, 10M and 100M events a day
// through each path, with a year of history in the tables.
//
// The emulator cannot show this (it is a row store), so the model has two
// halves. Which statements run, and how many per chunk, per load and per
// run, is counted, not assumed: modelrun.go runs each path's warehouse
// calls, in the order the workflows make them, on the emulator at a small
// scale with warehouse.SetStatementObserver recording every job. What a
// statement reads is computed here from the table layout (partitioning
// and clustering from schemas/bqschema, column widths by BigQuery's data
// size rules over generated events) and the statement's own SQL, matched
// against costRules; a statement no rule matches stops the model, so a
// new statement cannot be left out of it silently.

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

// Pricing: BigQuery on-demand compute, $6.25 per TiB processed, at least
// 10 MB per table a query references (https://cloud.google.com/bigquery/pricing;
// the first TiB of a month is free and is not subtracted here).
const (
	pricePerTiB = 6.25
	// streamPer200MB is the legacy streaming insert price (insertAll).
	streamPer200MB = 0.01

	minTableBytes = 10 << 20
)

// modelInputs are the model's knobs: today's defaults, spelled out so a
// redesign can be shown beside them by changing them (or the statements).
type modelInputs struct {
	ChunkRows       int     // KTPIPE_CHUNK_ROWS: rows per chunk (an export's may be more: warehouse.ChunkRowsFor)
	PullBatchEvents int     // KTPIPE_PAGE_SIZE × KTPIPE_PAGES_PER_BATCH: one pull load
	BatchesPerRun   int     // KTPIPE_BATCHES_PER_RUN: pull loads per workflow run
	WebhookBatches  int     // webhook loads a day (KTPIPE_WEBHOOK_BATCH 1m)
	ExportsPerDay   int     // KTPIPE_BACKFILL_WINDOW 24h: one export load per day
	HistoryDays     int     // days of events in the tables
	InvalidRate     float64 // share of records quarantined
	// PartitionsPerChunk is how many event_date partitions one chunk's
	// rows touch (a day's export: 1; a pull or webhook batch near
	// midnight or with late events: more).
	PartitionsPerChunk float64
	// PartitionFill is how full, on average, a partition is when a commit
	// reads it: today's partition grows through the day, so 0.5.
	PartitionFill float64
	// BatchChunks is how many chunks one commit transaction takes
	// (warehouse.MaxBatchChunks; 1 was the design before batches).
	BatchChunks int
	// QuarantineWindowDays is how far back a commit looks for a record
	// quarantined before (the quarantine's dedup window).
	QuarantineWindowDays int
	// UsageRowsPerCommit is how many fact_usage rows a commit adds: one a
	// (date, provider, model) it touched.
	UsageRowsPerCommit float64
	// CommitsPerDayAllPaths is how many commits a day add to fact_usage,
	// all paths together (set by the model from the pull and webhook
	// paths at each scale).
	CommitsPerDayAllPaths float64
	// CompactEvery is the compaction's interval in the compacted design
	// (KTPIPE_COMPACT_EVERY): the pull's and webhook batches' loads wait
	// for it and commit together.
	CompactEvery time.Duration
	// AuditEvery is KTPIPE_AUDIT_INTERVAL and AuditDays the days of
	// partitions an audit reads (workflows.DefaultAuditDays); it counts
	// the warehouse's CompletenessHours closed hours ending
	// CompletenessDelay before it (the schedule's, with the compaction:
	// the pull's interval, CompactEvery and 10 minutes). ReconcileWindows
	// is the daily reconcile's windows (a day of 1h steps, counted a
	// day's at a time: payload.MaxCountedSpan); each of Workers reads
	// the gauges' rows as app.gaugeReads does (gaugeAuditReads).
	AuditEvery        time.Duration
	AuditDays         int
	CompletenessHours int
	CompletenessDelay time.Duration
	ReconcileWindows  int
	Workers           int
}

func defaultModelInputs() modelInputs {
	return modelInputs{
		ChunkRows: 50_000, PullBatchEvents: 50 * 1000, BatchesPerRun: 20,
		WebhookBatches: 24 * 60, ExportsPerDay: 1, HistoryDays: 365,
		InvalidRate: 0.01, PartitionsPerChunk: 1, PartitionFill: 0.5,
		BatchChunks: warehouse.MaxBatchChunks, QuarantineWindowDays: 30, UsageRowsPerCommit: 20,
		CompactEvery: workflows.DefaultCompactEvery,
		AuditEvery:   workflows.DefaultAuditInterval, AuditDays: workflows.DefaultAuditDays, ReconcileWindows: 24,
		CompletenessHours: workflows.DefaultCompletenessHours, CompletenessDelay: workflows.CompletenessDelayFor(time.Hour, workflows.DefaultCompactEvery),
		Workers: 1,
	}
}

// widths are BigQuery's data sizes per row, by table and column (STRING:
// 2 + its UTF-8 bytes; INT64, DATE, TIMESTAMP: 8; NUMERIC: 16; BOOL: 1; a
// repeated column: the sum of its elements).
type widths map[string]map[string]float64

// observedStmt is one statement the emulator run recorded, with the
// scope it ran in.
type observedStmt struct {
	Scope string // "chunk", "commit", "load", "round", "run", "pullload", "pullrun", "audit", "livewhole", "days", "count", "reconcile", "gaugeaudit" or "gaugestate"
	Job   bool   // the first statement of a job (a script's later parts are child jobs)
	SQL   string // one statement (scripts are split); empty for a load job
	Load  string // table a load job writes
}

// scope of the rows a read covers.
type readScope int

const (
	scopeChunk       readScope = iota // a staging table: one chunk's rows
	scopePartitions                   // the chunk's event_date partitions of the table
	scopeLoad                         // raw's rows of the loads it names (clustering by load_id prunes to them)
	scopeTable                        // the whole table, every partition
	scopeSmall                        // a small table (ledger, state, dimensions, temp)
	scopeWindow                       // the quarantine's dedup window (QuarantineWindowDays)
	scopeUsage                        // fact_usage: usageRows
	scopeAuditDays                    // the audit's days of partitions (today's, half full on average, and AuditDays-1 before)
	scopeLive                         // live_events' rows in the live view's window
	scopeWindowSince                  // the quarantine's dedup window before a count's window, and a day from it to now
)

type tableRead struct {
	Table string
	Cols  []string
	Scope readScope
}

// costRule says what one kind of statement reads and which table it
// changes. Match is a regexp over the statement with table references
// shortened (see normalizeSQL).
type costRule struct {
	Name     string
	Match    *regexp.Regexp
	Reads    []tableRead
	Target   string // table a DML statement changes; "" for a query
	Mutating bool   // UPDATE, DELETE or MERGE: BigQuery queues these per table (2 running, 20 pending)
}

// eventCols are a staged row's columns, which raw and fact have too;
// quarantineCols a staged quarantine record's.
var (
	eventCols      = schemaCols(bqschema.EventRowSchema())
	quarantineCols = schemaCols(bqschema.QuarantineSchema())
)

// stagedCols are what the commit's whole-row reads of staging tables
// take: every column but load_id, which the script writes from its
// parameter (warehouse.wholeStaged).
var (
	stagedCols     = slices.DeleteFunc(slices.Clone(eventCols), isLoadID)
	stagedQuarCols = slices.DeleteFunc(slices.Clone(quarantineCols), isLoadID)
)

func isLoadID(col string) bool { return col == "load_id" }

// narrowCols are the columns the commit decides on before it reads a row
// in full: which rows are new to fact, and what they add to fact_usage and
// fact_users.
var narrowCols = []string{"event_id", "event_date", "provider", "model", "cost_usd", "total_tokens", "user"}

func schemaCols(schema bigquery.Schema) []string {
	cols := make([]string, len(schema))
	for i, f := range schema {
		cols[i] = f.Name
	}
	return cols
}

func rx(s string) *regexp.Regexp { return regexp.MustCompile(`(?s)^` + s) }

// costRules covers every statement ktpipe's load paths and its operations
// (the audit, the reconcile, the gauges) issue today.
var costRules = []costRule{
	{"commit: insert raw", rx(`INSERT INTO raw_events SELECT \* EXCEPT\(_load, _chunk, _n\) FROM \( SELECT u\.\*, ROW_NUMBER\(\) OVER \(PARTITION BY u\._load, u\.event_id ORDER BY u\._chunk\) AS _n FROM \( SELECT s\.\* REPLACE \(@load_ids\[OFFSET\(\d+\)\] AS load_id\), \d+ AS _load, \d+ AS _chunk FROM stg s.* NOT IN \(SELECT CONCAT\(r\.load_id, '/', r\.event_id\) FROM raw_events r WHERE r\.load_id IN UNNEST\(@load_ids\) AND r\.event_date BETWEEN`),
		[]tableRead{{"stg", stagedCols, scopeChunk}, {"raw_events", []string{"event_id", "load_id", "event_date"}, scopeLoad}}, "raw_events", false},
	{"commit: rows new to fact (anti-join, narrow)", rx(`CREATE TEMP TABLE new_rows AS SELECT \* EXCEPT\(_n\) FROM \( SELECT u\.\*, ROW_NUMBER\(\) OVER \(PARTITION BY u\.event_key ORDER BY u\._load, u\._chunk\) AS _n FROM \( SELECT v\.\*, FROM_HEX\(REPLACE\(v\.event_id, '-', ''\)\) AS event_key FROM \( SELECT s\.event_id, s\.event_date, s\.provider, s\.model, s\.cost_usd, s\.total_tokens, s\.` + "`user`" + `, \d+ AS _load, \d+ AS _chunk FROM stg s.* NOT IN \(SELECT f\.event_key FROM fact_ai_event f WHERE f\.event_date BETWEEN`),
		[]tableRead{{"stg", narrowCols, scopeChunk}, {"fact_ai_event", []string{"event_key", "event_date"}, scopePartitions}}, "", false},
	{"commit: insert fact", rx(`INSERT INTO fact_ai_event SELECT \* EXCEPT\(_load, _chunk, _n\) FROM \( SELECT u\.\*, ROW_NUMBER\(\) OVER \(PARTITION BY u\.event_key ORDER BY u\._load, u\._chunk\) AS _n FROM \( SELECT v\.\*, FROM_HEX\(REPLACE\(v\.event_id, '-', ''\)\) AS event_key FROM \( SELECT s\.\* REPLACE \(@load_ids\[OFFSET\(\d+\)\] AS load_id\), \d+ AS _load, \d+ AS _chunk FROM stg s.* WHERE u\.event_key IN \(SELECT n\.event_key FROM new_rows n\)\) WHERE _n = 1$`),
		[]tableRead{{"stg", stagedCols, scopeChunk}, {"new_rows", []string{"event_key"}, scopeChunk}}, "fact_ai_event", false},
	{"commit: add to fact_usage", rx(`INSERT INTO fact_usage \(event_date, provider, model, events, cost, tokens, load_id, chunk\) SELECT n\.event_date, n\.provider, n\.model, COUNT\(\*\), SUM\(n\.cost_usd\), SUM\(n\.total_tokens\), @load_ids\[OFFSET\(0\)\], \d+ FROM new_rows n`),
		[]tableRead{{"new_rows", []string{"event_date", "provider", "model", "cost_usd", "total_tokens"}, scopeChunk}}, "fact_usage", false},
	{"commit: add to fact_users", rx("INSERT INTO fact_users \\(`user`\\) SELECT DISTINCT n\\.`user` FROM new_rows n WHERE ARRAY_LENGTH\\(@load_ids\\) > 0 AND n\\.`user` NOT IN \\(SELECT u\\.`user` FROM fact_users u\\)$"),
		[]tableRead{{"new_rows", []string{"user"}, scopeChunk}, {"fact_users", []string{"user"}, scopeSmall}}, "fact_users", false},
	{"commit: insert quarantine", rx(`INSERT INTO quarantine SELECT \* EXCEPT\(_load, _chunk, _n\) FROM \( SELECT u\.\*, ROW_NUMBER\(\) OVER \(PARTITION BY u\.record_key ORDER BY u\._load, u\._chunk\) AS _n FROM \( SELECT v\.\*, FROM_HEX\(SUBSTR\(v\.record_hash, 1, 32\)\) AS record_key FROM \( SELECT s\.\* REPLACE \(@load_ids\[OFFSET\(\d+\)\] AS load_id\), \d+ AS _load, \d+ AS _chunk FROM qstg s.* record_key NOT IN \(SELECT q\.record_key FROM quarantine q WHERE q\.quarantined_at >= @quarantine_since AND q\.record_key IS NOT NULL\)$`),
		[]tableRead{{"qstg", stagedQuarCols, scopeChunk}, {"quarantine", []string{"record_key", "quarantined_at"}, scopeWindow}}, "quarantine", false},
	{"commit: ledger rows", rx(`INSERT INTO load_ledger \(`),
		[]tableRead{{"load_ledger", []string{"load_id", "chunk"}, scopeSmall}, {"added", nil, scopeSmall}}, "load_ledger", false},
	{"commit: rows added a chunk", rx(`CREATE TEMP TABLE added AS SELECT r\._load, r\._chunk, COUNT\(\*\) AS n FROM new_rows r WHERE ARRAY_LENGTH\(@load_ids\) > 0 GROUP BY r\._load, r\._chunk$`),
		[]tableRead{{"new_rows", []string{"_load", "_chunk"}, scopeChunk}}, "", false},
	{"commit: ledger rows before", rx(`CREATE TEMP TABLE ledger_before AS SELECT \(SELECT COUNT\(\*\) FROM load_ledger\) AS total, \(SELECT COUNT\(\*\) FROM load_ledger x WHERE x\.load_id IN UNNEST\(@load_ids\)\) AS mine$`),
		[]tableRead{{"load_ledger", []string{"load_id"}, scopeSmall}}, "", false},
	{"commit: commit_log row", rx(`INSERT INTO commit_log \(commit_set, what, ledger_rows, chunks_added, logged_at\) SELECT @commit_set, 'commit', .* FROM ledger_before b CROSS JOIN \(SELECT COUNT\(\*\) AS n FROM load_ledger x WHERE x\.load_id IN UNNEST\(@load_ids\)\) a$`),
		[]tableRead{{"load_ledger", []string{"load_id"}, scopeSmall}, {"ledger_before", nil, scopeSmall}}, "commit_log", false},
	{"commit: look for a commit beside", rx(`SELECT \(SELECT COUNT\(\*\) FROM load_ledger\) AS ledger_now, c\.ledger_rows, c\.chunks_added, \(SELECT COUNT\(\*\) FROM \(SELECT o\.commit_set FROM commit_log o WHERE .* FROM commit_log c WHERE c\.commit_set = @commit_set AND c\.what = 'commit' AND c\.logged_at >= @since$`),
		[]tableRead{{"load_ledger", nil, scopeSmall}, {"commit_log", []string{"commit_set", "what", "ledger_rows", "chunks_added", "logged_at"}, scopeSmall}}, "", false},
	{"commit: commit_chunks rows", rx(`INSERT INTO commit_chunks \(commit_set, load_id, chunk, logged_at\) SELECT @commit_set, @load_ids\[OFFSET\(e\.l\)\], e\.chunk, CURRENT_TIMESTAMP\(\) FROM \(`),
		nil, "commit_chunks", false},
	{"commit: record it converged", rx(`INSERT INTO commit_log \(commit_set, what, ledger_rows, chunks_added, logged_at\) SELECT s, 'converged', 0, 0, CURRENT_TIMESTAMP\(\) FROM UNNEST\(@commit_sets\) AS s$`),
		nil, "commit_log", false},
	// Only when a commit that looks found some of its chunks already in
	// the ledger, or cannot tell (not in the run).
	{"converge: unconverged sets sharing chunks", rx(`SELECT DISTINCT k\.commit_set FROM commit_chunks k WHERE`),
		[]tableRead{{"commit_chunks", []string{"commit_set", "load_id", "chunk", "logged_at"}, scopeSmall}, {"commit_log", []string{"commit_set", "what", "logged_at"}, scopeSmall}}, "", false},
	// Only when, besides, a set that never converged shares its chunks
	// (not in the run).
	{"converge: record the chunks looked at", rx(`INSERT INTO commit_looks \(commit_set, load_id, chunk, logged_at\) SELECT k\.commit_set`),
		[]tableRead{{"commit_chunks", []string{"commit_set", "load_id", "chunk", "logged_at"}, scopeSmall}}, "commit_looks", false},
	{"converge: sets all of whose chunks were looked at", rx(`SELECT k\.commit_set FROM commit_chunks k LEFT JOIN`),
		[]tableRead{{"commit_chunks", []string{"commit_set", "load_id", "chunk", "logged_at"}, scopeSmall}, {"commit_looks", []string{"commit_set", "load_id", "chunk", "logged_at"}, scopeSmall}}, "", false},
	// Only when a commit may have landed beside this one (the ledger
	// grew since its transaction began, or another commit has not
	// converged; not in the run).
	{"commit: look for doubled rows", rx(`SELECT \(SELECT COUNT\(\*\) FROM \(SELECT g\.event_key FROM fact_ai_event g WHERE g\.event_date BETWEEN .* FROM quarantine g WHERE g\.quarantined_at >= @quarantine_since`),
		[]tableRead{{"fact_ai_event", []string{"event_key", "event_date"}, scopePartitions}, {"stg", []string{"event_id"}, scopeChunk},
			{"quarantine", []string{"record_key", "quarantined_at"}, scopeWindow}, {"qstg", []string{"record_hash"}, scopeChunk}}, "", false},
	// Only when the look found a row doubled by a race (not in the run).
	{"converge: find doubled fact ids", rx(`CREATE TEMP TABLE fact_dups AS SELECT g\.event_key, MIN\(g\.load_id\) AS keep FROM fact_ai_event g`),
		[]tableRead{{"fact_ai_event", []string{"event_key", "load_id", "event_date"}, scopePartitions}, {"stg", []string{"event_id"}, scopeChunk}}, "", false},
	{"converge: take doubled rows out of fact_usage", rx(`INSERT INTO fact_usage \(event_date, provider, model, events, cost, tokens, load_id, chunk\) SELECT f\.event_date, f\.provider, f\.model, 0 - COUNT`),
		[]tableRead{{"fact_ai_event", []string{"event_key", "load_id", "event_date", "provider", "model", "cost_usd", "total_tokens"}, scopePartitions}, {"fact_dups", nil, scopeSmall}}, "fact_usage", false},
	{"converge: delete doubled fact rows", rx(`DELETE FROM fact_ai_event f WHERE f\.event_date BETWEEN .*fact_dups`),
		[]tableRead{{"fact_ai_event", []string{"event_key", "load_id", "event_date"}, scopePartitions}, {"fact_dups", nil, scopeSmall}}, "fact_ai_event", true},
	{"converge: find doubled quarantine", rx(`CREATE TEMP TABLE quarantine_dups AS SELECT g\.record_key, MIN\(g\.load_id\) AS keep FROM quarantine g`),
		[]tableRead{{"quarantine", []string{"record_key", "load_id", "quarantined_at"}, scopeWindow}, {"qstg", []string{"record_hash"}, scopeChunk}}, "", false},
	{"converge: delete doubled quarantine", rx(`DELETE FROM quarantine x WHERE`),
		[]tableRead{{"quarantine", []string{"record_key", "load_id", "quarantined_at"}, scopeWindow}, {"quarantine_dups", nil, scopeSmall}}, "quarantine", true},
	{"converge: log the removal", rx(`INSERT INTO commit_log \(commit_set, what, ledger_rows, chunks_added, logged_at\) SELECT @commit_set, 'removed', 0, 0, CURRENT_TIMESTAMP\(\)$`),
		nil, "commit_log", false},
	{"count rows (stage, dimension load check)", rx(`SELECT COUNT\(\*\) AS n FROM (stg|qstg|dim_\w+)$`), nil, "", false},
	{"read ledger", rx(`SELECT load_id, chunk FROM load_ledger WHERE load_id IN UNNEST\(@load_ids\)$`),
		[]tableRead{{"load_ledger", []string{"chunk", "load_id"}, scopeSmall}}, "", false},
	{"check load: ledger counts and dates", rx(`SELECT l\.load_id, IFNULL\(SUM\(l\.` + "`rows`" + `\), 0\) AS ledger_rows, .* FROM load_ledger l WHERE l\.load_id IN UNNEST\(@load_ids\) GROUP BY l\.load_id$`),
		[]tableRead{{"load_ledger", []string{"load_id", "rows", "quarantined", "min_date", "max_date"}, scopeSmall}}, "", false},
	{"check load: raw rows, missing in fact", rx(`SELECT r\.load_id, COUNT\(\*\) AS raw_rows, COUNTIF\(FROM_HEX\(REPLACE\(r\.event_id, '-', ''\)\) NOT IN \(SELECT f\.event_key FROM fact_ai_event f WHERE f\.event_date BETWEEN`),
		[]tableRead{{"raw_events", []string{"load_id", "event_id"}, scopeLoad}, {"fact_ai_event", []string{"event_key", "event_date"}, scopePartitions}}, "", false},
	// Only for loads whose ledger rows were written without dates, by a
	// version before them (not in the run).
	{"check load: dates of raw rows", rx(`SELECT MIN\(r\.event_date\) AS min_date, MAX\(r\.event_date\) AS max_date FROM raw_events r WHERE r\.load_id IN UNNEST\(@load_ids\)$`),
		[]tableRead{{"raw_events", []string{"load_id", "event_date"}, scopeLoad}}, "", false},
	{"dimensions: models", rx(`SELECT provider, model, SUM\(cost\) AS cost, SUM\(tokens\) AS tokens FROM fact_usage GROUP BY provider, model HAVING SUM\(events\) > 0$`),
		[]tableRead{{"fact_usage", []string{"provider", "model", "cost", "tokens", "events"}, scopeUsage}}, "", false},
	{"dimensions: fact_usage rows not folded", rx(`SELECT COUNTIF\(chunk != @folded\) AS n FROM fact_usage$`),
		[]tableRead{{"fact_usage", []string{"chunk"}, scopeUsage}}, "", false},
	// Only when fact_usage holds more rows than the bound since its last
	// fold (warehouse.DefaultUsageFoldRows; not in the run): reads the
	// table once, a few MB, and the DELETE is billed the whole table.
	{"dimensions: fold fact_usage", rx(`INSERT INTO fact_usage \(event_date, provider, model, events, cost, tokens, load_id, chunk\) SELECT u\.event_date, u\.provider, u\.model, SUM\(u\.events\), SUM\(u\.cost\), SUM\(u\.tokens\), @fold, @folded FROM fact_usage u GROUP BY`),
		[]tableRead{{"fact_usage", []string{"event_date", "provider", "model", "events", "cost", "tokens"}, scopeUsage}}, "fact_usage", false},
	{"dimensions: delete what the fold summed", rx(`DELETE FROM fact_usage WHERE load_id != @fold$`),
		[]tableRead{{"fact_usage", []string{"event_date", "provider", "model", "events", "cost", "tokens", "load_id", "chunk"}, scopeUsage}}, "fact_usage", true},
	// Only when the API's gateway list changed since the last refresh
	// (the first refresh of the run).
	{"dimensions: former gateways", rx(`SELECT gateway_id, name, team, environment, gateway_name FROM dim_gateway WHERE gateway_id NOT IN UNNEST\(@listed\) ORDER BY gateway_id LIMIT @most$`),
		[]tableRead{{"dim_gateway", []string{"gateway_id", "name", "team", "environment", "gateway_name"}, scopeSmall}}, "", false},
	{"dimensions: users", rx("SELECT DISTINCT `user` FROM fact_users LIMIT @most$"),
		[]tableRead{{"fact_users", []string{"user"}, scopeSmall}}, "", false},
	{"dimensions: date span", rx(`SELECT MIN\(d\) AS lo, MAX\(d\) AS hi FROM \(SELECT event_date AS d FROM fact_usage GROUP BY event_date HAVING SUM\(events\) > 0\)$`),
		[]tableRead{{"fact_usage", []string{"event_date", "events"}, scopeUsage}}, "", false},
	{"dimensions: empty a dimension", rx(`DELETE FROM dim_\w+ WHERE TRUE`), nil, "dim", true},
	{"read checkpoint", rx(`SELECT value FROM pipeline_state WHERE key = @key`),
		[]tableRead{{"pipeline_state", []string{"key", "value", "updated_at"}, scopeSmall}}, "", false},
	{"read checkpoint time", rx(`SELECT MAX\(updated_at\) AS t FROM pipeline_state`),
		[]tableRead{{"pipeline_state", []string{"key", "updated_at"}, scopeSmall}}, "", false},
	{"write checkpoint", rx(`INSERT INTO pipeline_state`), nil, "pipeline_state", false},
	// Operations: the audit (scopes "audit", "livewhole", "days" and "count"), a reconcile
	// window ("reconcile", and the audit's completeness hours) and a
	// worker's gauges ("gaugeaudit", "gaugestate").
	{"audit: fact's newest, rows and distinct keys", rx(`SELECT MAX\(event_timestamp\) AS newest, COUNT\(\*\) AS n, COUNT\(DISTINCT event_key\) AS ids, COUNTIF\(event_key IS NULL\) AS unkeyed FROM fact_ai_event WHERE event_date >= @from$`),
		[]tableRead{{"fact_ai_event", []string{"event_timestamp", "event_key", "event_date"}, scopeAuditDays}}, "", false},
	// Only when a fact row has no key (written outside ktpipe; not in
	// the run).
	{"audit: fact's distinct ids", rx(`SELECT COUNT\(\*\) AS n, COUNT\(DISTINCT event_id\) AS ids FROM fact_ai_event WHERE event_date >= @from$`),
		[]tableRead{{"fact_ai_event", []string{"event_id", "event_date"}, scopeAuditDays}}, "", false},
	{"audit: quarantine's newest", rx(`SELECT MAX\(event_timestamp\) AS newest FROM quarantine WHERE quarantined_at >= @from_ts$`),
		[]tableRead{{"quarantine", []string{"event_timestamp", "quarantined_at"}, scopeAuditDays}}, "", false},
	{"audit: the interval's records and resends", rx(`SELECT IFNULL\(SUM\(l\.` + "`rows`" + `\), 0\) AS n, IFNULL\(SUM\(l\.` + "`rows`" + ` - l\.added\), 0\) AS resends, .* FROM load_ledger l WHERE l\.committed_at >= @start AND l\.committed_at < @end$`),
		[]tableRead{{"load_ledger", []string{"rows", "added", "quarantined", "committed_at"}, scopeSmall}}, "", false},
	// Only for an interval with ledger rows an older worker wrote, which
	// do not count the rows added (not in the run).
	{"audit: the interval's records and resends, from raw", rx(`WITH loads AS \( SELECT load_id, quarantined FROM load_ledger WHERE committed_at >= @start .* FROM raw_events r LEFT JOIN interval_loads l ON l\.load_id = r\.load_id WHERE r\.event_date >= @from GROUP BY r\.event_id`),
		[]tableRead{{"load_ledger", []string{"load_id", "quarantined", "committed_at"}, scopeSmall}, {"raw_events", []string{"load_id", "ingested_at", "event_id", "event_date"}, scopeAuditDays}}, "", false},
	{liveNewestRule, rx(`SELECT event_timestamp AS newest, MAX\(ingested_at\) AS ingested FROM live_events WHERE ingested_at >= @live_since GROUP BY event_timestamp ORDER BY event_timestamp DESC LIMIT 1$`),
		[]tableRead{{"live_events", []string{"event_timestamp", "ingested_at"}, scopeLive}}, "", false},
	{"audit: append its row", rx(`INSERT INTO audit \(audited_at,`),
		[]tableRead{{"audit", []string{"audited_at"}, scopeSmall}}, "audit", false},
	{"count fact by window", rx(`SELECT DIV\(TIMESTAMP_DIFF\(event_timestamp, @since, MICROSECOND\), @step_us\) AS w, COUNT\(\*\) AS n FROM fact_ai_event WHERE event_date BETWEEN @lo AND @hi AND event_timestamp >= @since AND event_timestamp < @until GROUP BY w$`),
		[]tableRead{{"fact_ai_event", []string{"event_date", "event_timestamp"}, scopePartitions}}, "", false},
	{"count fact in a window", rx(`SELECT COUNT\(\*\) AS n FROM fact_ai_event WHERE event_date BETWEEN @lo AND @hi AND event_timestamp >= @since AND event_timestamp < @until$`),
		[]tableRead{{"fact_ai_event", []string{"event_date", "event_timestamp"}, scopePartitions}}, "", false},
	{"count quarantine by window", rx(`SELECT DIV\(TIMESTAMP_DIFF\(q\.event_timestamp, @since, MICROSECOND\), @step_us\) AS w, COUNT\(\*\) AS n FROM quarantine q WHERE q\.quarantined_at >= @quarantine_since AND q\.event_timestamp >= @since AND q\.event_timestamp < @until AND \(IF\(REGEXP_CONTAINS\(q\.event_id, .* GROUP BY w$`),
		[]tableRead{{"quarantine", []string{"quarantined_at", "event_timestamp", "event_id"}, scopeWindowSince}, {"fact_ai_event", []string{"event_key", "event_date"}, scopePartitions}}, "", false},
	{"count quarantine in a window", rx(`SELECT \(SELECT COUNT\(\*\) FROM quarantine q WHERE q\.quarantined_at >= @quarantine_since AND q\.event_timestamp >= @since AND q\.event_timestamp < @until AND \(IF\(REGEXP_CONTAINS\(q\.event_id, .* FROM quarantine u WHERE u\.quarantined_at >= @quarantine_since AND u\.event_timestamp IS NULL\) AS unplaced$`),
		[]tableRead{{"quarantine", []string{"quarantined_at", "event_timestamp", "event_id"}, scopeWindowSince}, {"fact_ai_event", []string{"event_key", "event_date"}, scopePartitions}}, "", false},
	{"audit: the audit before's end", rx(`SELECT MAX\(interval_end\) AS prev FROM audit WHERE audited_at >= @lookback AND audited_at < @end$`),
		[]tableRead{{"audit", []string{"interval_end", "audited_at"}, scopeSmall}}, "", false},
	{"audit: commits since its first day", rx(`SELECT COUNT\(\*\) AS n FROM commit_log WHERE logged_at >= @since$`),
		[]tableRead{{"commit_log", []string{"logged_at"}, scopeSmall}}, "", false},
	// The audit's latest row, which the audit carries counts from and
	// the gauges read.
	{"newest audit row", rx(`SELECT \* FROM audit WHERE audited_at >= @since ORDER BY (audited_at DESC|counted_at DESC, audited_at DESC) LIMIT 1$`),
		[]tableRead{{"audit", []string{"audited_at"}, scopeSmall}}, "", false},
}

// liveNewestRule names the audit's read of the live view's newest.
const liveNewestRule = "audit: live view's newest"

var (
	tableRefPattern = regexp.MustCompile("`[^`]+\\.([A-Za-z0-9_]+)`")
	spacePattern    = regexp.MustCompile(`\s+`)
)

// normalizeSQL shortens `project.dataset.table` to the table's name
// (staging tables to stg and qstg) and collapses white space.
func normalizeSQL(sql string) string {
	sql = tableRefPattern.ReplaceAllStringFunc(sql, func(ref string) string {
		name := tableRefPattern.FindStringSubmatch(ref)[1]
		switch {
		case strings.HasPrefix(name, "qstg_"):
			return "qstg"
		case strings.HasPrefix(name, "stg_"):
			return "stg"
		}
		return name
	})
	return strings.TrimSpace(spacePattern.ReplaceAllString(sql, " "))
}

// splitScript splits a script into its statements, leaving out the
// transaction's BEGIN and COMMIT (they read nothing).
func splitScript(sql string) []string {
	var out []string
	for _, s := range strings.Split(sql, ";") {
		s = strings.TrimSpace(s)
		if s == "" || s == "BEGIN TRANSACTION" || s == "COMMIT TRANSACTION" {
			continue
		}
		out = append(out, s)
	}
	return out
}

func ruleFor(sql string) (*costRule, error) {
	n := normalizeSQL(sql)
	for i := range costRules {
		if costRules[i].Match.MatchString(n) {
			return &costRules[i], nil
		}
	}
	return nil, fmt.Errorf("cost model: no rule for statement %q", n)
}

// usageRows is what fact_usage holds when a refresh reads it: every
// commit of every path adds UsageRowsPerCommit rows, and a refresh folds
// them into a row a key (a date's UsageRowsPerCommit models) once more
// than warehouse.DefaultUsageFoldRows came since the last fold. At
// most, then: the folded history and the bound.
func usageRows(in modelInputs, p pathLoad) float64 {
	added := in.UsageRowsPerCommit * math.Max(in.CommitsPerDayAllPaths, p.CommitsPerDay) * float64(in.HistoryDays)
	folded := in.UsageRowsPerCommit * float64(in.HistoryDays)
	return math.Min(added, folded+warehouse.DefaultUsageFoldRows)
}

// pathLoad is one path's shape at one scale: how many runs, loads and
// chunks (commits) a day.
type pathLoad struct {
	Path                 string
	RunsPerDay           float64
	RoundsPerDay         float64 // a compaction run's rounds, each a MergeLoads and a check
	LoadsPerDay          float64
	ChunksPerDay         float64
	RowsPerLoad          float64
	CommitsPerDay        float64
	EventsPerDay         float64
	NewBytesPerDay       float64 // the day's new fact rows, every column
	PartitionRows        float64 // rows of one fact partition (a day)
	HistoryRows          float64 // rows of fact with the whole history
	QuarantineRows       float64 // rows of quarantine with the whole history
	QuarantineWindowRows float64 // rows of quarantine in the dedup window
	QuarantinedPerCommit float64
	// CommittedRows is the rows the day's commits take: the day's events,
	// or twice them when the pull and the webhooks both bring every event
	// to the same commits (the compacted design).
	CommittedRows float64
	// PullLoadsPerDay and PullRunsPerDay are the pull's loads and runs
	// (its checkpoint writes and reads) in a design that mixes paths.
	PullLoadsPerDay, PullRunsPerDay float64
}

func shape(path string, eventsPerDay float64, in modelInputs) pathLoad {
	p := pathLoad{Path: path, EventsPerDay: eventsPerDay, CommittedRows: eventsPerDay}
	chunksFor := func(rows float64) float64 { return math.Max(1, math.Ceil(rows/float64(in.ChunkRows))) }
	batch := math.Max(1, float64(in.BatchChunks))
	switch path {
	case "export":
		p.LoadsPerDay = float64(in.ExportsPerDay)
		p.RunsPerDay = p.LoadsPerDay
		// An export's chunks grow with its row_count so that it is one
		// commit (warehouse.ChunkRowsFor), as SplitExport sizes them.
		perLoad := eventsPerDay / p.LoadsPerDay
		rows := float64(warehouse.ChunkRowsFor(int64(math.Ceil(perLoad)), in.ChunkRows, in.BatchChunks))
		p.ChunksPerDay = p.LoadsPerDay * math.Max(1, math.Ceil(perLoad/rows))
	case "pull":
		perHour := eventsPerDay / 24
		batches := math.Max(1, math.Ceil(perHour/float64(in.PullBatchEvents)))
		p.LoadsPerDay = 24 * batches
		p.RunsPerDay = 24 * math.Ceil(batches/float64(in.BatchesPerRun))
		p.ChunksPerDay = p.LoadsPerDay * chunksFor(perHour/batches)
	case "webhook":
		p.LoadsPerDay = float64(in.WebhookBatches)
		p.RunsPerDay = p.LoadsPerDay
		p.ChunksPerDay = p.LoadsPerDay * chunksFor(eventsPerDay/p.LoadsPerDay)
	case "compacted", "pull compacted", "webhook compacted", "live only compacted":
		// The pull's and the webhook batches' loads (or one path's),
		// committed by the compaction's runs: each run's chunks in
		// transactions of up to BatchChunks. With both paths every event
		// comes twice, once through each. Live-only webhook batches
		// (KTPIPE_WEBHOOK_LIVE_ONLY) load nothing: only streaming inserts
		// (TestLiveOnlyWebhooksLandOnceThroughThePull), priced apart, so
		// the loads are the pull's.
		var pull, hook pathLoad
		if path != "webhook compacted" {
			pull = shape("pull", eventsPerDay, in)
		}
		if path == "compacted" || path == "webhook compacted" {
			hook = shape("webhook", eventsPerDay, in)
		}
		if path == "compacted" {
			p.CommittedRows = 2 * eventsPerDay
		}
		p.LoadsPerDay = pull.LoadsPerDay + hook.LoadsPerDay
		p.ChunksPerDay = pull.ChunksPerDay + hook.ChunksPerDay
		p.PullLoadsPerDay, p.PullRunsPerDay = pull.LoadsPerDay, pull.RunsPerDay
		p.RunsPerDay = math.Ceil(float64(24*time.Hour) / float64(in.CompactEvery))
		// A run commits its loads in rounds of up to CompactLoads loads
		// and CompactChunks chunks (workflows.Compact), full rounds then
		// the rest, each round's chunks in transactions of BatchChunks.
		// (The activity packs whole loads, so a round of the chunk bound
		// may hold a load fewer; with a load of a chunk or two it is the
		// load bound that applies.)
		loads, chunks := p.LoadsPerDay/p.RunsPerDay, p.ChunksPerDay/p.RunsPerDay
		rounds := math.Max(math.Ceil(loads/workflows.CompactLoads), math.Ceil(chunks/workflows.CompactChunks))
		full := math.Min(workflows.CompactLoads*chunks/loads, workflows.CompactChunks)
		last := math.Max(chunks-(rounds-1)*full, 0)
		p.RoundsPerDay = p.RunsPerDay * rounds
		p.CommitsPerDay = p.RunsPerDay * ((rounds-1)*math.Ceil(full/batch) + math.Ceil(last/batch))
	}
	if path == "pull" {
		p.PullLoadsPerDay, p.PullRunsPerDay = p.LoadsPerDay, p.RunsPerDay
	}
	p.RowsPerLoad = p.CommittedRows / p.LoadsPerDay
	if !strings.HasSuffix(path, "compacted") {
		p.CommitsPerDay = p.LoadsPerDay * math.Ceil(p.ChunksPerDay/p.LoadsPerDay/batch)
	}
	p.PartitionRows = eventsPerDay
	p.HistoryRows = eventsPerDay * float64(in.HistoryDays)
	p.QuarantineRows = p.HistoryRows * in.InvalidRate
	p.QuarantineWindowRows = eventsPerDay * float64(min(in.HistoryDays, in.QuarantineWindowDays)) * in.InvalidRate
	p.QuarantinedPerCommit = p.CommittedRows * in.InvalidRate / p.CommitsPerDay
	return p
}

// gaugeAuditReads is how often a day a worker reads the newest audit
// row, with audits a day (app.gaugeReads) at the default 30 s refresh:
// at the tick each audit's row is due and the next, and besides at least
// every app.WarehouseGaugeEvery. It assumes every audit runs and its row
// shows by the tick after its slot's, so it is a floor: a run longer
// than that costs a read a tick more, a skipped or slow audit up to 7
// reads (app's auditCatchUp, 2.5 minutes at 5-minute audits, then
// backing off), and the slot after a skipped one up to 10 at 5-minute
// audits (a read a tick until KtpipeAuditStale would fire); audits that
// stop are looked for up to 15 minutes past the last row (at 1-minute
// audits, a read a tick).
func gaugeAuditReads(audits float64) float64 {
	return 2*audits + math.Max(0, float64(24*time.Hour)/float64(app.WarehouseGaugeEvery)-audits)
}

// dayCost is the model's answer for one path at one scale.
type dayCost struct {
	pathLoad
	LoadJobs, QueryJobs float64
	DML                 map[string]float64 // DML statements by table (INSERT and mutating)
	Mutating            map[string]float64 // UPDATE, DELETE, MERGE statements by table
	BytesScanned        float64            // processed: what the statements read
	BytesBilled         float64            // processed, with the 10 MB minimum per table referenced: what is paid
	ByRule              map[string]float64 // bytes billed by rule, for the breakdown
	ScannedByRule       map[string]float64 // bytes scanned by rule
}

// cost scales the statements the emulator run recorded (per chunk, per
// commit, per load, per compaction round, per run) to one day of path p.
func cost(p pathLoad, stmts []observedStmt, w widths, in modelInputs) (dayCost, error) {
	c := dayCost{pathLoad: p, DML: map[string]float64{}, Mutating: map[string]float64{}, ByRule: map[string]float64{}, ScannedByRule: map[string]float64{}}
	c.NewBytesPerDay = p.EventsPerDay * rowWidth(w["event"])
	audits := float64(24*time.Hour) / float64(in.AuditEvery)
	times := map[string]float64{"chunk": p.ChunksPerDay, "commit": p.CommitsPerDay, "load": p.LoadsPerDay, "run": p.RunsPerDay,
		"round": p.RoundsPerDay, "pullload": p.PullLoadsPerDay, "pullrun": p.PullRunsPerDay,
		"audit": audits, "livewhole": math.Min(audits, 24), "days": dayCounts(audits, p.CommitsPerDay), "count": dayCounts(audits, p.CommitsPerDay), "reconcile": math.Ceil(float64(in.ReconcileWindows) * float64(time.Hour) / float64(payload.MaxCountedSpan)),
		"gaugeaudit": float64(in.Workers) * gaugeAuditReads(audits), "gaugestate": float64(in.Workers) * float64(24*time.Hour) / float64(app.WarehouseGaugeEvery)}
	chunkRows := p.CommittedRows / p.CommitsPerDay
	batch := math.Max(1, float64(in.BatchChunks))
	for _, st := range stmts {
		n, ok := times[st.Scope]
		if !ok {
			return c, fmt.Errorf("cost model: no scope %q", st.Scope)
		}
		if st.SQL == "" {
			c.LoadJobs += n
			continue
		}
		r, err := ruleFor(st.SQL)
		if err != nil {
			return c, err
		}
		if r.Name == liveNewestRule && st.Scope == "audit" {
			n -= times["livewhole"] // those audits read the window whole instead
		}
		if st.Job {
			c.QueryJobs += n
		}
		if r.Target != "" {
			c.DML[r.Target] += n
			if r.Mutating {
				c.Mutating[r.Target] += n
			}
		}
		for _, rd := range r.Reads {
			var rows float64
			switch rd.Scope {
			case scopeChunk:
				rows = chunkRows
				if strings.HasPrefix(rd.Table, "q") {
					rows = p.QuarantinedPerCommit
				}
			case scopePartitions:
				rows = in.PartitionsPerChunk * in.PartitionFill * p.PartitionRows
				switch st.Scope {
				case "reconcile":
					rows = p.PartitionRows // a closed day, whole
				case "count":
					// A day of hours from the completeness hours' start.
					rows = windowPartitions(in.CompletenessDelay+time.Duration(in.CompletenessHours)*time.Hour-payload.MaxCountedSpan,
						int(payload.MaxCountedSpan/time.Hour)) * p.PartitionRows
				}
			case scopeLive:
				// What the live view's window (the compaction's
				// interval and an hour) holds: every path streams its
				// rows. An audit between its whole reads reads what
				// was ingested since the last (half an hour on
				// average) and warehouse.LiveLate before it. The
				// table's partitions are hours of ingested_at, so a
				// read starts at its first hour's top: half an hour
				// more, on average.
				span := warehouse.LiveWindowFor(in.CompactEvery) + 30*time.Minute
				if st.Scope == "audit" {
					span = min(span, 30*time.Minute+warehouse.LiveLate+30*time.Minute)
				}
				rows = p.CommittedRows * float64(span) / float64(24*time.Hour)
			case scopeAuditDays:
				// A day's rows of the table: raw gets every load's
				// (both paths: twice the events), quarantine the
				// invalid records.
				day := p.EventsPerDay
				switch rd.Table {
				case "raw_events":
					day = p.CommittedRows
				case "quarantine":
					day = p.EventsPerDay * in.InvalidRate
				}
				rows = (float64(in.AuditDays) - 1 + in.PartitionFill) * day
			case scopeLoad:
				// A statement that names its loads reads the rows raw
				// holds of them: one load's; a compaction round's loads',
				// which it checks together; and for a commit's guard,
				// what earlier commits of its loads landed.
				switch st.Scope {
				case "round":
					rows = p.CommittedRows / p.RoundsPerDay
				case "commit":
					rows = landedBefore(p, batch)
				default:
					rows = p.RowsPerLoad
				}
			case scopeTable:
				rows = p.HistoryRows
				if rd.Table == "quarantine" {
					rows = p.QuarantineRows
				}
			case scopeWindow:
				rows = p.QuarantineWindowRows
			case scopeWindowSince:
				// The window's start is hours back for the audit, a day
				// or two for the reconcile: a day, on average.
				rows = p.QuarantineWindowRows + p.EventsPerDay*in.InvalidRate
			case scopeUsage:
				rows = usageRows(in, p)
			}
			var perRow float64
			for _, col := range rd.Cols {
				perRow += w[tableKind(rd.Table)][col]
			}
			// The 10 MB minimum is per table referenced: a commit's union
			// of staging tables references one a chunk.
			tables := 1.0
			if rd.Scope == scopeChunk && (rd.Table == "stg" || rd.Table == "qstg") {
				tables = math.Max(1, p.ChunksPerDay/p.CommitsPerDay)
			}
			b := math.Max(rows*perRow, tables*minTableBytes)
			c.BytesScanned += n * rows * perRow
			c.BytesBilled += n * b
			c.ByRule[r.Name] += n * b
			c.ScannedByRule[r.Name] += n * rows * perRow
		}
	}
	return c, nil
}

// dayCounts is how many of a day's audits count the audited days and a
// day of hours rather than carry them (see warehouse.MeasureAudit): the
// day's first, and one after each commit, at most every audit. A floor:
// an audit also counts the hours when they move past the day counted,
// once a day, which a day with no commit for 21 hours would show.
func dayCounts(audits, commits float64) float64 {
	return math.Min(audits, 1+commits)
}

// windowPartitions is how many days' partitions, on average over the
// day, a count of hours hours ending delay before now reads (a negative
// delay: after now): the partitions of the dates the window spans,
// today's as full as the day is old, those before whole, those after
// empty.
func windowPartitions(delay time.Duration, hours int) float64 {
	const day = 24 * 60
	var sum float64
	for m := 0; m < day; m++ { // each minute of the day
		end := m - int(delay.Minutes())
		start := end - 60*hours
		for d := floorDiv(start, day); d <= floorDiv(end-1, day); d++ {
			switch {
			case d == 0:
				sum += float64(m) / day
			case d < 0:
				sum++
			} // a day ahead holds nothing yet
		}
	}
	return sum / day
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// landedBefore is what raw holds, on average, of a commit's loads when
// the commit's guard reads it: what earlier commits of the same loads
// landed. A load that fits one commit has nothing there yet (a floor:
// BigQuery prunes by storage block, and a block whose load_id range
// spans the load's is read); one of k commits of batch chunks each, the
// last taking the rest, has 0, 1, …, k-1 commits' chunks there.
func landedBefore(p pathLoad, batch float64) float64 {
	chunks := p.ChunksPerDay / p.LoadsPerDay
	k := math.Ceil(chunks / batch)
	if k <= 1 {
		return 0
	}
	return p.RowsPerLoad / chunks * batch * (k - 1) / 2
}

// tableKind maps a table to the row layout whose widths it has.
func tableKind(table string) string {
	switch table {
	case "qstg":
		return "quarantine"
	case "quarantine":
		return "quarantine_table"
	case "fact_usage":
		return "usage"
	case "fact_ai_event", "new_rows":
		return "fact" // new_rows: narrow columns and event_key
	}
	return "event"
}

func dollars(bytes float64) float64 { return bytes / (1 << 40) * pricePerTiB }

func human(b float64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	i := 0
	for b >= 1000 && i < len(units)-1 {
		b /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// printModel writes the model's inputs and table.
func printModel(out io.Writer, in modelInputs, w widths, paths map[string][]observedStmt, scales []float64) error {
	fmt.Fprintf(out, "inputs: chunk %d rows (%d chunks a commit at most), pull batch %d events (%d per run), %d webhook batches a day, %d export a day,\n",
		in.ChunkRows, in.BatchChunks, in.PullBatchEvents, in.BatchesPerRun, in.WebhookBatches, in.ExportsPerDay)
	fmt.Fprintf(out, "        %d days of history, %.0f%% quarantined (dedup window %d days), %.0f partition(s) per commit read at %.0f%% full; event_id %.0f B/row, load_id %.0f B/row, a fact row %.0f B\n",
		in.HistoryDays, 100*in.InvalidRate, in.QuarantineWindowDays, in.PartitionsPerChunk, 100*in.PartitionFill, w["event"]["event_id"], w["event"]["load_id"], rowWidth(w["event"]))
	fmt.Fprintf(out, "pricing: on-demand $%.2f per TiB, 10 MB minimum per table referenced (scanned: what statements read; billed: with the minimum)\n\n", pricePerTiB)
	fmt.Fprintf(out, "| events/day | path | loads | commits | load jobs | query jobs | DML/day: fact, raw, quarantine, ledger, state | mutating DML on fact | scanned/day | scanned ÷ new rows | billed/day | $/day |\n")
	fmt.Fprintf(out, "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	for _, n := range scales {
		in := atScale(in, n)
		var all dayCost
		all.DML, all.Mutating = map[string]float64{}, map[string]float64{}
		for _, path := range []string{"export", "pull", "webhook"} {
			c, err := cost(shape(path, n, in), paths[path], w, in)
			if err != nil {
				return err
			}
			printRow(out, c)
			if path != "export" {
				all.LoadsPerDay += c.LoadsPerDay
				all.CommitsPerDay += c.CommitsPerDay
				all.LoadJobs += c.LoadJobs
				all.QueryJobs += c.QueryJobs
				all.BytesScanned += c.BytesScanned
				all.BytesBilled += c.BytesBilled
				all.NewBytesPerDay = c.NewBytesPerDay
				all.EventsPerDay = c.EventsPerDay
				for k, v := range c.DML {
					all.DML[k] += v
				}
				for k, v := range c.Mutating {
					all.Mutating[k] += v
				}
			}
		}
		all.Path = "pull + webhook"
		printRow(out, all)
		for _, path := range []string{"pull compacted", "webhook compacted", "compacted", "live only compacted"} {
			c, err := compacted(path, n, in, w, paths)
			if err != nil {
				return err
			}
			printRow(out, c)
		}
	}
	// The live landing streams every webhook event once more, billed by
	// row with a 1 KB minimum; the live view's reads are the querier's.
	// The compacted design streams the pull's rows as well: every event
	// twice, once from each path, whether the webhooks load or not.
	fmt.Fprintf(out, "\nlive landing (webhook path, KTPIPE_WEBHOOK_LIVE; compacted, webhooks live only or not, the pull's chunks too): streaming inserts at $%.2f per 200 MB, rows billed at 1 KB at least:\n\n", streamPer200MB)
	fmt.Fprintf(out, "| events/day | design | insertAll requests/day | billed | $/day |\n|---:|---|---:|---:|---:|\n")
	for _, n := range scales {
		for _, d := range []struct {
			name string
			rows float64
		}{{"webhook", n}, {"compacted", 2 * n}} {
			billed := d.rows * math.Max(rowWidth(w["event"]), 1000)
			// A request at least every KTPIPE_WEBHOOK_LIVE (2 s) while
			// deliveries arrive, then one per MaxLiveRows rows.
			requests := math.Max(math.Ceil(d.rows/warehouse.MaxLiveRows), 86400/2)
			fmt.Fprintf(out, "| %s | %s | %s | %s | $%s |\n", count(n), d.name, count(requests), human(billed), money(billed/200e6*streamPer200MB))
		}
	}
	// A year of history loaded by backfill: one export a day, the tables
	// growing from empty to a year as it goes.
	fmt.Fprintf(out, "\nbackfill of a year by export (one export a day, %d days, the tables growing as it goes), in all:\n\n", in.HistoryDays)
	fmt.Fprintf(out, "| events/day | loads | commits | load jobs | query jobs | DML on fact | mutating DML on fact | scanned | $ |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range scales {
		var t dayCost
		t.DML, t.Mutating = map[string]float64{}, map[string]float64{}
		for d := 0; d < in.HistoryDays; d++ {
			day := in
			day.HistoryDays = d + 1 // the day's own partition is in the table as it loads
			c, err := cost(shape("export", n, day), paths["export"], w, day)
			if err != nil {
				return err
			}
			t.LoadsPerDay += c.LoadsPerDay
			t.CommitsPerDay += c.CommitsPerDay
			t.LoadJobs += c.LoadJobs
			t.QueryJobs += c.QueryJobs
			t.DML["fact_ai_event"] += c.DML["fact_ai_event"]
			t.Mutating["fact_ai_event"] += c.Mutating["fact_ai_event"]
			t.BytesScanned += c.BytesScanned
			t.BytesBilled += c.BytesBilled
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s | $%s |\n", count(n), count(t.LoadsPerDay), count(t.CommitsPerDay), count(t.LoadJobs),
			count(t.QueryJobs), count(t.DML["fact_ai_event"]), count(t.Mutating["fact_ai_event"]), human(t.BytesScanned), money(dollars(t.BytesBilled)))
	}
	// Where 100M/day's bytes go, on the pull path.
	last := scales[len(scales)-1]
	in = atScale(in, last)
	c, err := cost(shape("pull", last, in), paths["pull"], w, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nbytes scanned a day at %s events/day, pull path, by statement:\n", count(scales[len(scales)-1]))
	printBreakdown(out, c)
	for _, path := range []string{"pull compacted", "compacted"} { // live only: the pull's
		if c, err = compacted(path, last, in, w, paths); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nbytes scanned a day at %s events/day, %s, by statement:\n", count(last), c.Path)
		printBreakdown(out, c)
	}
	// A day's export at the least and the most: what a commit reads
	// whatever its size weighs most at the least, the raw guard of a
	// load in several commits at the most.
	for _, n := range []float64{scales[0], last} {
		in := atScale(in, n)
		if c, err = cost(shape("export", n, in), paths["export"], w, in); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nbytes scanned a day at %s events/day, export (one a day), by statement:\n", count(n))
		printBreakdown(out, c)
	}
	return printOperations(out, in, w, paths, scales)
}

// printOperations writes what operating ktpipe reads a day besides its
// loads, at the default intervals: the audit, the daily reconcile and
// one worker's gauges. They read the same tables whatever the path; raw
// holds the pull's rows (with the webhooks too, twice as many).
func printOperations(out io.Writer, in modelInputs, w widths, paths map[string][]observedStmt, scales []float64) error {
	fmt.Fprintf(out, "\noperations, a day, with the compaction every %s: an audit every %s (%d days of partitions, the live view's window, %d closed hours %s back), the daily reconcile (%d windows), %d worker's gauges (the audit row when due, pipeline_state every %s):\n\n",
		in.CompactEvery, in.AuditEvery, in.AuditDays, in.CompletenessHours, in.CompletenessDelay, in.ReconcileWindows, in.Workers, app.WarehouseGaugeEvery)
	fmt.Fprintf(out, "| events/day | query jobs | scanned/day | scanned ÷ new rows | billed/day | $/day | pull compacted with them: scanned ÷ new rows | billed/day | $/day |\n")
	fmt.Fprintf(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var ops dayCost
	for _, n := range scales {
		in := atScale(in, n)
		var err error
		if ops, err = cost(shape("pull compacted", n, in), paths["operations"], w, in); err != nil {
			return err
		}
		load, err := compacted("pull compacted", n, in, w, paths)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| %s | %s | %s | %.1f× | %s | $%s | %.1f× | %s | $%s |\n", count(n), count(ops.QueryJobs), human(ops.BytesScanned),
			ops.BytesScanned/ops.NewBytesPerDay, human(ops.BytesBilled), money(dollars(ops.BytesBilled)),
			(ops.BytesScanned+load.BytesScanned)/ops.NewBytesPerDay, human(ops.BytesBilled+load.BytesBilled), money(dollars(ops.BytesBilled+load.BytesBilled)))
	}
	fmt.Fprintf(out, "\nbytes scanned a day at %s events/day by the operations, by statement:\n", count(scales[len(scales)-1]))
	printBreakdown(out, ops)
	return nil
}

// atScale is in at n events a day: the commits of the uncompacted pull
// and webhooks add to fact_usage, which the dimensions read.
func atScale(in modelInputs, n float64) modelInputs {
	in.CommitsPerDayAllPaths = shape("pull", n, in).CommitsPerDay + shape("webhook", n, in).CommitsPerDay
	return in
}

// compacted is the compacted design's day at n events: the pull's and
// webhook batches' loads (path "compacted"), or one path's ("pull
// compacted", "webhook compacted"), committed together by the compaction.
func compacted(path string, n float64, in modelInputs, w widths, paths map[string][]observedStmt) (dayCost, error) {
	p := shape(path, n, in)
	in.CommitsPerDayAllPaths = p.CommitsPerDay
	c, err := cost(p, paths["compacted"], w, in)
	every := strings.TrimSuffix(in.CompactEvery.String(), "0m0s")
	c.Path = map[string]string{"compacted": "pull + webhook", "pull compacted": "pull", "webhook compacted": "webhook",
		"live only compacted": "pull + webhook live only"}[path] + ", compacted every " + every
	return c, err
}

func printBreakdown(out io.Writer, c dayCost) {
	var names []string
	for k := range c.ByRule {
		names = append(names, k)
	}
	// By bytes scanned, then billed, then name: the same order every run.
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if c.ScannedByRule[a] != c.ScannedByRule[b] {
			return c.ScannedByRule[a] > c.ScannedByRule[b]
		}
		if c.ByRule[a] != c.ByRule[b] {
			return c.ByRule[a] > c.ByRule[b]
		}
		return a < b
	})
	fmt.Fprintf(out, "  %-44s %12s %12s %8s\n", "statement", "scanned", "billed", "$")
	for _, k := range names {
		fmt.Fprintf(out, "  %-44s %12s %12s  $%.2f\n", k, human(c.ScannedByRule[k]), human(c.ByRule[k]), dollars(c.ByRule[k]))
	}
}

func printRow(out io.Writer, c dayCost) {
	newBytes := c.NewBytesPerDay
	ratio := "—"
	if newBytes > 0 {
		ratio = fmt.Sprintf("%.1f×", c.BytesScanned/newBytes)
	}
	fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s, %s, %s, %s, %s | %s | %s | %s | %s | $%s |\n",
		count(c.EventsPerDay), c.Path, count(c.LoadsPerDay), count(c.CommitsPerDay), count(c.LoadJobs), count(c.QueryJobs),
		count(c.DML["fact_ai_event"]), count(c.DML["raw_events"]), count(c.DML["quarantine"]), count(c.DML["load_ledger"]), count(c.DML["pipeline_state"]),
		count(c.Mutating["fact_ai_event"]), human(c.BytesScanned), ratio, human(c.BytesBilled), money(dollars(c.BytesBilled)))
}

func money(d float64) string {
	if d >= 100 {
		return count(d)
	}
	return fmt.Sprintf("%.2f", d)
}

// count formats n with thousands separators (or as M for millions).
func count(n float64) string {
	if n >= 1e6 && math.Mod(n, 1e6) == 0 {
		return fmt.Sprintf("%.0fM", n/1e6)
	}
	s := fmt.Sprintf("%.0f", n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func rowWidth(cols map[string]float64) float64 {
	var t float64
	for _, v := range cols {
		t += v
	}
	return t
}
