package payload

import "time"

// ExportQuarantineInput selects one batch of quarantined records.
type ExportQuarantineInput struct {
	LoadID       string
	Rule         string // rule, or "field: rule"; "" for any
	Since, Until time.Time
	After        string // record hash the previous batch ended at
	Limit        int    // records in this batch
}

// QuarantineFile is one staged file of quarantined records.
type QuarantineFile struct {
	Key    string
	Format string // json (an array) or csv
}

// ExportQuarantineResult names the staged files and counts; the records
// themselves stay out of workflow history.
type ExportQuarantineResult struct {
	Files    []QuarantineFile
	Selected int64 // records read from the quarantine
	Exported int64 // of those, written to Files
	// Unreadable records' raw text is not a JSON object: truncated (a
	// record too large keeps only its head) or broken; they stay.
	Unreadable int64
	// Skipped records are CSV rows whose cells could pass as another
	// record than the one quarantined (the row had the wrong number of
	// cells, or a JSON record whose every value is a string broke a type
	// rule), or beyond the activity's bound on CSV headers; they stay.
	Skipped int64
	Last    string // the last record hash read: the next batch starts after it
	More    bool   // the batch was full: there may be more
}

// SplitQuarantineInput names a batch's staged files to split as a load.
type SplitQuarantineInput struct {
	LoadID   string
	Files    []QuarantineFile
	Gateways []string
}
