package activities

import (
	"context"
	"time"

	"github.com/ktpipe/ktpipe/payload"
)

// ReadCheckpoint returns the stored checkpoint ("" when none).
func (a *Activities) ReadCheckpoint(ctx context.Context, key string) (string, error) {
	defer keepAlive(ctx, nil)()
	v, err := a.Warehouse.Checkpoint(ctx, key)
	return v, classifyWarehouse(ctx, "read checkpoint", err)
}

// CheckpointTime returns when the stored checkpoint was written (zero
// when none): every event ingested before then has been merged.
func (a *Activities) CheckpointTime(ctx context.Context, key string) (time.Time, error) {
	defer keepAlive(ctx, nil)()
	t, err := a.Warehouse.CheckpointTime(ctx, key)
	return t, classifyWarehouse(ctx, "read checkpoint time "+key, err)
}

// WriteCheckpoint stores a checkpoint; writing the same value twice is
// harmless.
func (a *Activities) WriteCheckpoint(ctx context.Context, in payload.CheckpointInput) error {
	defer keepAlive(ctx, nil)()
	return classifyWarehouse(ctx, "write checkpoint", a.Warehouse.SetCheckpoint(ctx, in.Key, in.Value))
}
