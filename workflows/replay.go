package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// ReplayInput names what to load again: a load id whose chunks are still
// staged, or a window to export again from the source.
type ReplayInput struct {
	LoadID string    `json:"loadId,omitempty"` // a failed load whose chunks are still staged
	Since  time.Time `json:"since,omitzero"`   // or a window to load again from the source
	Until  time.Time `json:"until,omitzero"`
	Format string    `json:"format,omitempty"`
	Gzip   bool      `json:"gzip,omitempty"`
	Tuning Tuning    `json:"tuning,omitzero"`
}

// replayFinishesPending: a replay from staging removes the load's
// compaction mark (see Compact).
const replayFinishesPending = "replay-finishes-pending"

// ReplayResult says what the replay loaded.
type ReplayResult struct {
	LoadID      string `json:"loadId"`
	From        string `json:"from"` // staging or source
	Rows        int64  `json:"rows"`
	Quarantined int64  `json:"quarantined"`
}

// Replay re-runs a failed load. From staging it stages and merges the
// load's chunks again (the merge adds only what is missing); from the
// source it runs a fresh ExportLoad of the window. Either way, running it
// twice changes nothing the second time.
func Replay(ctx workflow.Context, in ReplayInput) (ReplayResult, error) {
	if err := checkInput(ctx, in.Check); err != nil {
		return ReplayResult{}, err
	}
	progress := "starting"
	// setProgress shows the phase in the UI too.
	setProgress := func(p string) {
		progress = p
		details(ctx, ReplaySummary(in), "phase: "+p)
	}
	setProgress(progress)
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (string, error) { return progress, nil }); err != nil {
		return ReplayResult{}, err
	}
	// One upsert (as before the load id was added, so recorded
	// histories replay).
	sa := []temporal.SearchAttributeUpdate{KindKey.ValueSet("replay")}
	if in.LoadID != "" {
		sa = append(sa, LoadIDKey.ValueSet(in.LoadID))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, sa...); err != nil {
		return ReplayResult{}, err
	}
	t := in.Tuning.withDefaults()
	if in.LoadID != "" {
		setProgress("reading manifest")
		var man payload.Manifest
		if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.ReadManifest, in.LoadID).Get(ctx, &man); err != nil {
			return ReplayResult{}, fmt.Errorf("replay %s: %w", in.LoadID, err)
		}
		gateways, _, err := fetchGateways(ctx)
		if err != nil {
			return ReplayResult{}, err
		}
		if err := landLoad(ctx, t, payload.SourceReplay, man, loadTail{Refresh: true, Gateways: gateways, Phase: setProgress}); err != nil {
			return ReplayResult{}, err
		}
		if workflow.GetVersion(ctx, replayFinishesPending, workflow.DefaultVersion, 1) == 1 {
			// A load the compaction could not commit is pending: landed
			// now, it is not the compaction's any more.
			if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.FinishLoads, []string{man.LoadID}).Get(ctx, nil); err != nil {
				return ReplayResult{}, fmt.Errorf("replay %s: remove its pending mark: %w", man.LoadID, err)
			}
		}
		cleanupLoad(ctx, t, man.LoadID)
		setProgress("done")
		return ReplayResult{LoadID: man.LoadID, From: "staging", Rows: man.Rows, Quarantined: man.Quarantined}, nil
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, WindowStartKey.ValueSet(in.Since), WindowEndKey.ValueSet(in.Until)); err != nil {
		return ReplayResult{}, err
	}
	setProgress("exporting")
	child := ExportLoadInput{Since: in.Since, Until: in.Until, Format: in.Format, Gzip: in.Gzip, Source: "replay", Tuning: in.Tuning}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:    workflow.GetInfo(ctx).WorkflowExecution.ID + "/export",
		StaticSummary: ExportSummary(child),
		TypedSearchAttributes: temporal.NewSearchAttributes(KindKey.ValueSet("replay"),
			WindowStartKey.ValueSet(in.Since), WindowEndKey.ValueSet(in.Until)),
	})
	var res ExportLoadResult
	if err := workflow.ExecuteChildWorkflow(cctx, ExportLoad, child).Get(ctx, &res); err != nil {
		return ReplayResult{}, fmt.Errorf("replay window: %w", err)
	}
	setProgress("done")
	return ReplayResult{LoadID: res.LoadID, From: "source", Rows: res.Rows, Quarantined: res.Quarantined}, nil
}
