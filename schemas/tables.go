package schemas

// Table names of the warehouse. The dataset is the user's; these are ours.
// Their BigQuery definitions are in package bqschema, so this package
// (the decoders) does not link the BigQuery client.
const (
	TableRaw          = "raw_events"
	TableFact         = "fact_ai_event"
	TableQuarantine   = "quarantine"
	TableDimUser      = "dim_user"
	TableDimModel     = "dim_model"
	TableDimDate      = "dim_date"
	TableDimGateway   = "dim_gateway"
	TableState        = "pipeline_state"
	TableLedger       = "load_ledger"
	TableCommits      = "commit_log"
	TableCommitChunks = "commit_chunks"
	TableCommitLooks  = "commit_looks"
	TableAudit        = "audit"
	TableUsage        = "fact_usage"
	TableUsers        = "fact_users"
	TableLive         = "live_events"
)
