// Package activities glues the source client, the staging store and the
// warehouse to Temporal. Each activity is idempotent by construction —
// its effect is keyed by the load id and chunk number the workflow passes
// — so Temporal may retry it, or a new worker may redo it, at any point.
//
// What the activities take and return, their registered names and the
// error types they mark failures with are declared in package payload,
// which workflows link instead of this package and its clients. One file
// per step: errors.go turns client errors into those types (retry, wait,
// or stop); export.go, split.go, pull.go and load.go (stage, merge,
// check, clean up) carry a load; checkpoint.go, reconcile.go, audit.go
// and outcome.go serve the pull's cursor, the counts and the backfill.
package activities

import (
	"context"
	"encoding/json"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// Activities holds what the activities need; the worker builds it once.
type Activities struct {
	API       *keeptrusts.Client
	Warehouse *warehouse.Warehouse
	Store     staging.Store
	Prices    []warehouse.Price
	Users     map[string]warehouse.UserInfo
	ChunkRows int
	// ExportChunks is the most chunks an export whose row_count is known
	// is split into (0, or more than warehouse.MaxBatchChunks:
	// MaxBatchChunks, one commit); its chunks grow past ChunkRows to fit
	// (exportChunks). Tests set it lower, to see chunks grow without
	// loading hundreds of them.
	ExportChunks int
	// Limits bound one record and a gzip stream's inflation (zero:
	// schemas.DefaultLimits).
	Limits schemas.Limits
	// Metrics times chunk stages and commits (nil: not recorded).
	Metrics *metrics.Metrics
	// InsertLive streams rows into live_events (nil:
	// Warehouse.InsertLive); a test of LandLive sets its own.
	InsertLive func(context.Context, []json.RawMessage) error

	dims refresher // coalesces RefreshDimensions calls on this worker
}

// The activities have the signatures workflows schedule them with, by
// payload's names.
var (
	_ payload.Activities = (*Activities)(nil)
	_ payload.Cleaner    = (*Cleaner)(nil)
)

func (a *Activities) limits() schemas.Limits {
	if a.Limits == (schemas.Limits{}) {
		return schemas.DefaultLimits
	}
	return a.Limits
}
