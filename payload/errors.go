package payload

// Error types that workflows branch on, and that retry policies name as
// non-retryable. Activities set them on the application errors they
// return; workflows set the last two.
const (
	ErrTypeAPI         = "KeeptrustsAPIError"
	ErrTypeRateLimited = "RateLimited"
	ErrTypeExpired     = "ExportExpired"
	// ErrTypeCursorRejected: the server refuses a stored cursor (410
	// cursor_expired after 30 days, or 400 invalid_cursor); the pull
	// restarts from the checkpoint's time instead.
	ErrTypeCursorRejected = "CursorRejected"
	ErrTypeSchema         = "SchemaError"
	ErrTypeMalformed      = "MalformedSource"
	ErrTypeNothingStaged  = "NothingStaged"
	ErrTypeIncomplete     = "IncompleteLoad"
	// ErrTypeNoGateways: the API listed no gateways. Validating against
	// an empty list would quarantine every event as "unknown gateway"
	// while the cursor moves on, so the load fails instead.
	ErrTypeNoGateways = "NoGateways"
	// ErrTypeChecksum: the export file failed its sha256 twice in a row
	// (each time downloaded whole); the export, not the transfer, is bad.
	ErrTypeChecksum = "ExportChecksum"
	// ErrTypeBigQuery: BigQuery (or Cloud Storage) refused the request
	// itself (4xx: a bad query, a schema mismatch, a missing table or
	// permission), which no retry heals. Rate limits are not this.
	ErrTypeBigQuery = "BigQueryRejected"
	// ErrTypeBadInput: an input a workflow or activity refuses (it names
	// the field); retrying the same input cannot help.
	ErrTypeBadInput = "BadInput"
	// ErrTypeBackfillFailed: a backfill finished with windows that failed
	// for good (each named in the message; replay them).
	ErrTypeBackfillFailed = "BackfillFailed"
	// ErrTypeCleanup: a clean-up that cannot run as configured.
	ErrTypeCleanup = "CleanupMisconfigured"
)
