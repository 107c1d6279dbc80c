package payload

import "time"

// Export statuses of the contract.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusExpired   = "expired"
)

// Export is an export job, as the Keeptrusts API describes it (the JSON
// names are the contract's) and as CreateExport and GetExport return it.
type Export struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	Format      string     `json:"format"`
	Compression string     `json:"compression"`
	Status      string     `json:"status"`
	Since       time.Time  `json:"since"`
	Until       time.Time  `json:"until"`
	Description string     `json:"description"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RowCount    *int64     `json:"row_count"`
	SizeBytes   *int64     `json:"size_bytes"`
	SHA256      *string    `json:"sha256"`
	Error       *string    `json:"error"`
}

// Terminal reports whether the export will not change status again
// (expiry aside).
func (e Export) Terminal() bool {
	return e.Status == StatusCompleted || e.Status == StatusFailed || e.Status == StatusExpired
}

// CreateExportInput asks for one export window.
type CreateExportInput struct {
	IdempotencyKey string
	Since, Until   time.Time
	Format         string
	Gzip           bool
	Description    string
}

// DownloadInput names the export to download and the load it feeds.
type DownloadInput struct {
	LoadID string
	Export Export
}

// DownloadResult is where the file was staged.
type DownloadResult struct {
	Key       string
	Bytes     int64
	ResumedAt int64 // bytes already staged when this attempt started
}

// SplitInput names a staged file to split into chunks.
type SplitInput struct {
	LoadID   string
	Source   string
	Key      string
	Format   string
	Gzip     bool
	Gateways []string
	// Records is the export's row_count (0 when the API gave none): a
	// large export's chunks grow so that it commits in one transaction
	// (warehouse.ChunkRowsFor).
	Records int64
}
