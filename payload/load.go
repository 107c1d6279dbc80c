package payload

import (
	"strings"
	"time"
)

// Sources of a load: raw.source in the warehouse, and the source label
// of ktpipe_records_total.
const (
	SourceExport  = "export"
	SourcePull    = "pull"
	SourceWebhook = "webhook"
	SourceReplay  = "replay"
	// SourceQuarantineReplay is the raw table's source of promoted
	// records.
	SourceQuarantineReplay = "quarantine-replay"
)

// Chunk is one loadable piece of a load: its valid rows and its
// quarantined records, by key, with counts. This, not the data, is what a
// workflow carries.
type Chunk struct {
	Index         int
	Key           string
	QuarantineKey string // empty when the chunk quarantined nothing
	Rows          int64
	Quarantined   int64
	MinDate       string // event_date range of the rows, for partition pruning
	MaxDate       string
}

// Manifest describes what a split produced.
type Manifest struct {
	LoadID      string
	Records     int64 // records read from the source, valid or not
	Rows        int64 // valid rows written (after in-chunk dedup)
	Quarantined int64
	// Resent counts records whose id (or, for bad records, whose text)
	// repeated one already in the same chunk: the source resent them.
	Resent        int64
	Chunks        []Chunk
	UnknownFields []string // fields the contract does not name, seen in the data
}

// LoadID joins parts into a staging-safe load id: every byte outside
// [A-Za-z0-9._-] becomes '_', and a leading '.', '-' or '_' becomes 'L'.
// Workflows name their loads with it, and the clean-up predicts those
// names with it, so the two cannot drift apart.
func LoadID(parts ...string) string {
	b := []byte(strings.Join(parts, "-"))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && (b[0] == '.' || b[0] == '-' || b[0] == '_') {
		b[0] = 'L'
	}
	return string(b)
}

// SplitStagedInput names staged JSON-array files (webhook deliveries) to
// split into one load's chunks.
type SplitStagedInput struct {
	LoadID   string
	Source   string
	Keys     []string
	Gateways []string
}

// SplitStagedResult is the load's manifest, and how many files were gone.
type SplitStagedResult struct {
	Manifest Manifest
	Missing  int
}

// LandLiveInput names staged webhook deliveries whose valid events are to
// be streamed into live_events, validated against Gateways as the batch's
// commit will validate them.
type LandLiveInput struct {
	LoadID   string
	Keys     []string
	Gateways []string
}

// LandLiveResult counts the rows streamed (at least once).
type LandLiveResult struct {
	Rows int64
	// Gone counts the delivery files removed before this attempt of the
	// landing read them (an attempt resumed from a heartbeat counts its
	// own): their batch had staged them already, and with the compaction
	// their events show in the live view only once it commits them.
	Gone int `json:",omitempty"`
}

// PullInput asks for a batch of pages after a cursor.
type PullInput struct {
	LoadID   string
	Cursor   string // "" on the very first pull: Since applies
	Since    string
	Pages    int
	PageSize int
	Gateways []string
}

// PullResult is a staged batch of pages and where to continue.
type PullResult struct {
	Manifest   Manifest
	NextCursor string
	HasMore    bool
	Pages      int
}

// ChunkInput names one chunk of a load.
type ChunkInput struct {
	LoadID string
	Chunk  Chunk
}

// MergeInput names a load whose chunks are staged.
type MergeInput struct {
	LoadID string
	Source string
	Chunks []Chunk
}

// Completeness is the end-of-load check: what CheckLoad reports.
type Completeness struct {
	RawRows       int64 // rows of this load in the raw table
	MissingInFact int64 // of those, event ids the fact table lacks
	LedgerRows    int64 // rows the ledger records for this load
	LedgerQuar    int64 // quarantined records the ledger records
}

// Gateway is a known gateway (a dim_gateway row), as FetchGateways
// returns it.
type Gateway struct {
	ID, Name, Team, Environment string
}

// CheckpointInput is a checkpoint to store.
type CheckpointInput struct {
	Key, Value string
}

// Window is a timestamp range [Since, Until).
type Window struct {
	Since, Until time.Time
}

// MergeLoadsInput names several loads whose chunks are staged, to commit
// together (the compaction).
type MergeLoadsInput struct {
	Loads []MergeInput
}

// ChunksInput names staged chunks of one load.
type ChunksInput struct {
	LoadID string
	Chunks []Chunk
}

// PendingLoad is a load staged and waiting for the compaction to commit
// it: its source and manifest, as the compaction needs them to commit,
// check and count it.
type PendingLoad struct {
	Source   string
	Manifest Manifest
}

// PendingLoadsInput bounds what one listing of pending loads returns.
type PendingLoadsInput struct {
	MaxLoads  int // at most this many loads
	MaxChunks int // and at most this many chunks in all (one load may exceed it alone)
	// Exclude names loads to pass over (this run could not commit them),
	// so that they do not fill the bounds.
	Exclude []string
}

// PendingLoadsResult is pending loads in key order, within the bounds.
type PendingLoadsResult struct {
	Loads []PendingLoad
	More  bool // more loads are pending than returned
	// Unreadable names the loads whose marks could not be read (not
	// JSON, too large, or naming another load), passed over so that the
	// others are committed; the compaction names them at its end.
	Unreadable []string `json:",omitempty"`
}
