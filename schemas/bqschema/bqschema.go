// Package bqschema holds the BigQuery table definitions of the rows
// package schemas encodes. It lives apart from schemas so the decoders
// (and their fuzz targets) do not link the BigQuery client.
package bqschema

import (
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/ktpipe/ktpipe/schemas"
)

// float64Type is FLOAT64, BigQuery's name for FLOAT: the emulator takes
// "FLOAT" for a 32-bit float and refuses to insert a FLOAT64 into it.
const float64Type bigquery.FieldType = "FLOAT64"

// TableSpec describes one table: its schema, partitioning and clustering.
type TableSpec struct {
	Name        string
	Description string
	Schema      bigquery.Schema
	// PartitionField is a DATE or TIMESTAMP column partitioned by day;
	// empty for small tables.
	PartitionField string
	// PartitionHourly partitions by hour instead of day.
	PartitionHourly bool
	// PartitionExpiration drops a partition this long after its start
	// (zero: kept).
	PartitionExpiration time.Duration
	Clustering          []string
}

// TimePartitioning is the spec's partitioning (nil: none).
func (s TableSpec) TimePartitioning() *bigquery.TimePartitioning {
	if s.PartitionField == "" {
		return nil
	}
	tp := &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: s.PartitionField, Expiration: s.PartitionExpiration}
	if s.PartitionHourly {
		tp.Type = bigquery.HourPartitioningType
	}
	return tp
}

// LiveRetention is how long live_events keeps an hour of live rows. The
// live view shows a row for its window (warehouse.SetLiveWindow, 1 hour
// by default) after ingestion; an hourly partition keeps a row
// LiveRetention less up to an hour, so the window may be at most
// LiveRetention − 1h (warehouse.MaxLiveWindow): raise this first to show
// rows longer (on an existing table, its partition expiration too).
const LiveRetention = 6 * time.Hour

func req(name string, t bigquery.FieldType) *bigquery.FieldSchema {
	return &bigquery.FieldSchema{Name: name, Type: t, Required: true}
}

func opt(name string, t bigquery.FieldType) *bigquery.FieldSchema {
	return &bigquery.FieldSchema{Name: name, Type: t}
}

func rep(name string, t bigquery.FieldType) *bigquery.FieldSchema {
	return &bigquery.FieldSchema{Name: name, Type: t, Repeated: true}
}

// EventRowSchema is the row layout schemas.AppendEventRow writes: the contract's
// fields, the seed's derived columns, and where the row came from. Raw,
// staging and fact tables share it, so a load never reshapes data (fact
// adds a key the commit computes, FactSchema).
func EventRowSchema() bigquery.Schema {
	return bigquery.Schema{
		req("event_id", bigquery.StringFieldType),
		req("event_timestamp", bigquery.TimestampFieldType),
		req("event_date", bigquery.DateFieldType),
		req("event_hour", bigquery.IntegerFieldType),
		req("gateway_id", bigquery.StringFieldType),
		req("user", bigquery.StringFieldType),
		req("provider", bigquery.StringFieldType),
		req("model", bigquery.StringFieldType),
		req("decision", bigquery.StringFieldType),
		rep("policies_evaluated", bigquery.StringFieldType),
		rep("policies_triggered", bigquery.StringFieldType),
		req("policy_count", bigquery.IntegerFieldType),
		req("latency_ms", bigquery.IntegerFieldType),
		req("input_tokens", bigquery.IntegerFieldType),
		req("output_tokens", bigquery.IntegerFieldType),
		req("total_tokens", bigquery.IntegerFieldType),
		req("cost_usd", bigquery.NumericFieldType),
		req("was_blocked", bigquery.BooleanFieldType),
		// JSON text in STRING columns: JSON_VALUE reads them in the views,
		// and the same tables work on BigQuery and on the emulator.
		opt("metadata", bigquery.StringFieldType),
		opt("extra", bigquery.StringFieldType),
		req("load_id", bigquery.StringFieldType),
		req("source", bigquery.StringFieldType),
		req("ingested_at", bigquery.TimestampFieldType),
		// The data engineer guide's star schema keys and its policy count
		// (see schemas.Transform), last and NULLABLE: they were added to
		// existing tables, where a new column must be both (the commit
		// copies staging rows by position). Every row ktpipe writes has
		// them; rows loaded before they existed were backfilled once
		// (warehouse.EnsureSchema).
		opt("date_id", bigquery.IntegerFieldType),
		opt("model_id", bigquery.StringFieldType),
		opt("user_id", bigquery.StringFieldType),
		opt("policies_count", bigquery.IntegerFieldType),
	}
}

// FactSchema is the event row and the fact table's dedup key, event_key:
// the 16 bytes of the event's UUID (validation admits no other id), which
// the commit computes from event_id in SQL (warehouse's eventKeySQL).
// Every commit and check looks an event up by its key in its date's
// partition, and BigQuery bills the column read whole: 18 bytes a row
// where event_id is 38. It is last and NULLABLE as it was added to tables holding rows,
// filled once in those (warehouse.EnsureSchema).
func FactSchema() bigquery.Schema {
	return append(EventRowSchema(), opt("event_key", bigquery.BytesFieldType))
}

// QuarantineTableSchema is the staged quarantine row and the quarantine
// table's dedup key, record_key: the first 16 bytes of record_hash's
// SHA-256, which the commit computes. The commit's lookup reads 30 days
// of it (18 bytes a row, where the hash's 64 hex digits are 66). Last and
// NULLABLE, as event_key is (FactSchema).
func QuarantineTableSchema() bigquery.Schema {
	return append(QuarantineSchema(), opt("record_key", bigquery.BytesFieldType))
}

// QuarantineSchema is the row layout schemas.AppendQuarantineRow writes.
func QuarantineSchema() bigquery.Schema {
	return bigquery.Schema{
		req("record_hash", bigquery.StringFieldType),
		opt("event_id", bigquery.StringFieldType),
		opt("event_timestamp", bigquery.TimestampFieldType),
		req("field", bigquery.StringFieldType),
		req("rule", bigquery.StringFieldType),
		req("raw", bigquery.StringFieldType),
		req("load_id", bigquery.StringFieldType),
		req("source", bigquery.StringFieldType),
		req("quarantined_at", bigquery.TimestampFieldType),
	}
}

// commitChunkSchema is a row of commit_chunks and of commit_looks: a
// commit set's (load, chunk), and when it was written.
func commitChunkSchema() bigquery.Schema {
	return bigquery.Schema{
		req("commit_set", bigquery.StringFieldType),
		req("load_id", bigquery.StringFieldType),
		req("chunk", bigquery.IntegerFieldType),
		req("logged_at", bigquery.TimestampFieldType),
	}
}

var eventClustering = []string{"gateway_id", "provider", "model", "decision"}

// Tables lists every table ktpipe owns, in creation order.
func Tables() []TableSpec {
	return []TableSpec{
		{
			Name:           schemas.TableRaw,
			Description:    "Append-only landing of every valid event as loaded, with load id, source kind and ingest time.",
			Schema:         EventRowSchema(),
			PartitionField: "event_date",
			Clustering:     []string{"load_id", "gateway_id"},
		},
		{
			Name:           schemas.TableFact,
			Description:    "One row per event id: the deduplicated fact of the star schema.",
			Schema:         FactSchema(),
			PartitionField: "event_date",
			Clustering:     eventClustering,
		},
		{
			Name:           schemas.TableQuarantine,
			Description:    "Records that failed validation, with the field and rule they broke.",
			Schema:         QuarantineTableSchema(),
			PartitionField: "quarantined_at",
			Clustering:     []string{"load_id", "field"},
		},
		{
			Name:        schemas.TableDimUser,
			Description: "Users with team and department from the user mapping; unknown when unmapped.",
			Schema: bigquery.Schema{
				req("user", bigquery.StringFieldType),
				req("team", bigquery.StringFieldType),
				req("department", bigquery.StringFieldType),
				opt("user_id", bigquery.StringFieldType), // schemas.UserID
			},
		},
		{
			Name:        schemas.TableDimModel,
			Description: "Models with their provider, list prices per 1k tokens and the observed cost per 1k tokens.",
			Schema: bigquery.Schema{
				req("provider", bigquery.StringFieldType),
				req("model", bigquery.StringFieldType),
				opt("input_cost_per_1k", bigquery.NumericFieldType),
				opt("output_cost_per_1k", bigquery.NumericFieldType),
				opt("model_id", bigquery.StringFieldType),   // schemas.ModelID
				opt("model_name", bigquery.StringFieldType), // the guide's name for model
				// cost_per_1k is what 1,000 tokens (input and output) cost on
				// average in the fact table: the guide keeps one price per
				// model, the price table two. NULL for a model with no events.
				opt("cost_per_1k", bigquery.NumericFieldType),
			},
		},
		{
			Name:        schemas.TableDimDate,
			Description: "Calendar days covered by the fact table.",
			Schema: bigquery.Schema{
				req("date", bigquery.DateFieldType),
				req("year", bigquery.IntegerFieldType),
				req("quarter", bigquery.IntegerFieldType),
				req("month", bigquery.IntegerFieldType),
				req("day", bigquery.IntegerFieldType),
				req("weekday", bigquery.IntegerFieldType),
				req("iso_week", bigquery.IntegerFieldType),
				req("is_weekend", bigquery.BooleanFieldType),
				opt("date_id", bigquery.IntegerFieldType), // schemas.DateID: 20261129
				opt("week", bigquery.IntegerFieldType),    // the guide's name for iso_week
			},
		},
		{
			Name:        schemas.TableDimGateway,
			Description: "Gateways from the Keeptrusts API, with team and environment.",
			Schema: bigquery.Schema{
				req("gateway_id", bigquery.StringFieldType),
				req("name", bigquery.StringFieldType),
				req("team", bigquery.StringFieldType),
				req("environment", bigquery.StringFieldType),
				opt("gateway_name", bigquery.StringFieldType), // the guide's name for name
			},
		},
		{
			Name:        schemas.TableState,
			Description: "Pipeline checkpoints (cursors), append-only: the newest row of a key wins.",
			Schema: bigquery.Schema{
				req("key", bigquery.StringFieldType),
				req("value", bigquery.StringFieldType),
				req("updated_at", bigquery.TimestampFieldType),
			},
		},
		{
			// Append-only and never expired: a commit decides whether to
			// look for doubled rows by whether its row count grew
			// (warehouse.converge), which a row removed could hide.
			Name:           schemas.TableLedger,
			Description:    "One row per committed chunk: what was loaded, from where, and how many rows.",
			PartitionField: "committed_at",
			Schema: bigquery.Schema{
				req("load_id", bigquery.StringFieldType),
				req("chunk", bigquery.IntegerFieldType),
				req("source", bigquery.StringFieldType),
				req("rows", bigquery.IntegerFieldType),
				req("quarantined", bigquery.IntegerFieldType),
				req("committed_at", bigquery.TimestampFieldType),
				// The chunk's first and last event dates, which bound
				// the fact partitions its load's check reads (NULL
				// without rows, and in rows written before them).
				opt("min_date", bigquery.DateFieldType),
				opt("max_date", bigquery.DateFieldType),
				// How many of the chunk's rows were new to fact when it
				// committed; the rest the source had sent before, which
				// the audit counts as resends (NULL in rows written
				// before it).
				opt("added", bigquery.IntegerFieldType),
			},
		},
		{
			// Read right after each commit, to decide whether it must look
			// for rows a commit beside it doubled (warehouse.converge):
			// only when the ledger has grown since its transaction began,
			// or another commit has not finished its own look.
			Name:                schemas.TableCommits,
			Description:         "Per commit: 'commit', written by its transaction (load_ledger's rows as it began plus those it added, and how many it added), and 'converged', once it has looked for rows doubled beside it or found it need not, or later commits' looks have covered all its chunks (commit_looks); 'removed', written by the transaction that removed rows doubled beside it. The audit carries its counts while no row is added. Partitions expire after 8 days.",
			PartitionField:      "logged_at",
			PartitionExpiration: 8 * 24 * time.Hour,
			Schema: bigquery.Schema{
				req("commit_set", bigquery.StringFieldType),
				req("what", bigquery.StringFieldType),
				req("ledger_rows", bigquery.IntegerFieldType),
				req("chunks_added", bigquery.IntegerFieldType),
				req("logged_at", bigquery.TimestampFieldType),
			},
		},
		{
			// Read when a commit finds some of its chunks already in the
			// ledger (warehouse.overlapUnconverged): a set retried as
			// others (a compaction that re-listed with more loads, or
			// split them one by one) looks at the chunks of the set whose
			// look never ran, and once looks have covered them all that
			// set is recorded converged too, instead of every commit
			// looking for commitLogWindow.
			Name:                schemas.TableCommitChunks,
			Description:         "The (load, chunk) pairs of each commit, written by its transaction, so that later commits holding the chunks of one that never converged can look for it (commit_looks). Partitions expire after 8 days.",
			PartitionField:      "logged_at",
			PartitionExpiration: 8 * 24 * time.Hour,
			Schema:              commitChunkSchema(),
		},
		{
			// Written and read by a commit whose look covered chunks of a
			// set that never converged (warehouse.recordLooks): the looks
			// of several later sets together can cover one, as when a
			// compaction commits its loads one by one.
			Name:                schemas.TableCommitLooks,
			Description:         "Chunks of a commit that never converged that a later commit's look covered: once every chunk of it is here, it is recorded converged. Partitions expire after 8 days.",
			PartitionField:      "logged_at",
			PartitionExpiration: 8 * 24 * time.Hour,
			Schema:              commitChunkSchema(),
		},
		{
			// The dimensions are refreshed from these two, not from the
			// fact table: each commit adds what it inserted into the fact
			// table, and a refresh folds the rows into their sums past a
			// bound (warehouse.DefaultUsageFoldRows), so it reads a row
			// a date and model, not every event of the year.
			Name:        schemas.TableUsage,
			Description: "What each commit added to fact_ai_event, by date, provider and model (negative rows when doubled rows are removed), folded into one row a date, provider and model (chunk -2) when it grows past a bound: the source of dim_model's cost_per_1k and dim_date's span.",
			Schema: bigquery.Schema{
				req("event_date", bigquery.DateFieldType),
				req("provider", bigquery.StringFieldType),
				req("model", bigquery.StringFieldType),
				req("events", bigquery.IntegerFieldType),
				opt("cost", bigquery.NumericFieldType),
				opt("tokens", bigquery.IntegerFieldType),
				req("load_id", bigquery.StringFieldType),
				req("chunk", bigquery.IntegerFieldType),
			},
		},
		{
			Name:        schemas.TableUsers,
			Description: "The users of fact_ai_event, each at least once (the source of dim_user).",
			Schema: bigquery.Schema{
				req("user", bigquery.StringFieldType),
			},
		},
		{
			// Rows of webhook deliveries as the batch's live landing
			// streamed them, seconds after delivery and before the batch
			// commits them: what fact_ai_event_live adds to the fact.
			Name:                schemas.TableLive,
			Description:         "Webhook events streamed seconds after delivery, before their batch commits them; at least once (fact_ai_event_live dedups). Hourly partitions expire after 6 hours.",
			Schema:              EventRowSchema(),
			PartitionField:      "ingested_at",
			PartitionHourly:     true,
			PartitionExpiration: LiveRetention,
			Clustering:          []string{"event_id"},
		},
		{
			Name:           schemas.TableAudit,
			Description:    "One row per scheduled audit: ingestion lag, duplicates, resends, schema violations and completeness, as the alerts see them.",
			PartitionField: "audited_at",
			Schema: bigquery.Schema{
				req("audited_at", bigquery.TimestampFieldType),
				opt("api_newest", bigquery.TimestampFieldType),
				opt("warehouse_newest", bigquery.TimestampFieldType),
				opt("ingestion_lag_seconds", float64Type),
				opt("fact_rows", bigquery.IntegerFieldType),
				opt("fact_duplicate_rows", bigquery.IntegerFieldType),
				opt("fact_duplicate_ratio", float64Type),
				opt("source_records", bigquery.IntegerFieldType),
				opt("source_resends", bigquery.IntegerFieldType),
				opt("source_resend_ratio", float64Type),
				opt("interval_start", bigquery.TimestampFieldType),
				opt("interval_end", bigquery.TimestampFieldType),
				opt("schema_violations", bigquery.IntegerFieldType),
				opt("completeness_start", bigquery.TimestampFieldType),
				opt("completeness_end", bigquery.TimestampFieldType),
				opt("api_count", bigquery.IntegerFieldType),
				opt("warehouse_count", bigquery.IntegerFieldType),
				opt("completeness_ratio", float64Type),
				// When the fact's figures were taken (this audit or one
				// it carries them from, with counted_hours, which
				// warehouse_count sums), the first day they cover,
				// commit_log's rows since then, and the newest event of
				// fact and quarantine they found.
				opt("counted_at", bigquery.TimestampFieldType),
				opt("counted_since", bigquery.TimestampFieldType),
				opt("counted_commits", bigquery.IntegerFieldType),
				opt("counted_newest", bigquery.TimestampFieldType),
				// The live view's newest event, the latest ingestion of
				// its rows, and when the view's window was last read
				// whole (payload.LiveCount).
				opt("live_newest", bigquery.TimestampFieldType),
				opt("live_newest_ingested", bigquery.TimestampFieldType),
				opt("live_counted_at", bigquery.TimestampFieldType),
				// Each hour's count from the completeness hours' start,
				// as JSON (payload.HourCounts): the audits after carry it.
				opt("counted_hours", bigquery.StringFieldType),
			},
		},
	}
}
