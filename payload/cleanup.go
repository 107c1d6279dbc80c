package payload

import "time"

// CleanupInput configures one clean-up.
type CleanupInput struct {
	// Retention: files modified more recently are kept (default
	// activities.DefaultStagingRetention, at least
	// activities.MinStagingRetention).
	Retention time.Duration
}

// CleanupResult reports what a clean-up removed and kept.
type CleanupResult struct {
	Cutoff     time.Time // files modified before this were candidates
	Files      int       // removed
	Bytes      int64     // removed
	Loads      int       // loads whose files were removed
	Deliveries int       // webhook delivery files removed
	Temporary  int       // files left by writes that died, removed
	LoadIDs    []string  // the first removed load ids, at most CleanupLoadIDs
	// Kept: files of loads whose workflow run is still open (however
	// old), files newer than the cutoff, and files outside ktpipe's
	// layout, which are never removed.
	KeptRunning, KeptRecent, KeptUnknown int
	KeptBytes                            int64 // bytes of the kept files
	More                                 bool  // a bound was reached; the next run continues
}

// CleanupLoadIDs bounds the load ids a clean-up's result names.
const CleanupLoadIDs = 50
