package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/payload"
)

// DefaultQuarantineBatch is how many quarantined records one load of a
// QuarantineReplay takes: it bounds the staged files of a batch (records
// are at most the record size cap, most far smaller) and keeps each
// batch one chunk at the default chunk size.
const DefaultQuarantineBatch = 50_000

// quarantineBatchesPerRun bounds one run's history (about six events a
// batch plus one per chunk); the run then continues as new.
const quarantineBatchesPerRun = 20

// QuarantineReplayInput selects the quarantined records to validate
// again.
type QuarantineReplayInput struct {
	Rule      string    `json:"rule,omitempty"` // a rule, or "field: rule"; "" for any
	Since     time.Time `json:"since,omitzero"` // the records' own timestamps; zero for all
	Until     time.Time `json:"until,omitzero"`
	BatchSize int       `json:"batchSize,omitempty"` // records per load (DefaultQuarantineBatch)
	Tuning    Tuning    `json:"tuning,omitzero"`
	// After and Totals carry a run's progress through continue-as-new.
	After  string                 `json:"after,omitempty"`
	Totals QuarantineReplayResult `json:"totals,omitzero"`
}

// QuarantineReplayResult counts what the replay did.
type QuarantineReplayResult struct {
	Batches      int   `json:"batches"`
	Selected     int64 `json:"selected"`     // quarantined records with an event id not in the fact table
	Promoted     int64 `json:"promoted"`     // of those, valid now: loaded into raw and fact
	StillInvalid int64 `json:"stillInvalid"` // failed validation again; they stay quarantined
	Unreadable   int64 `json:"unreadable"`   // raw text truncated or broken: cannot be promoted
	Skipped      int64 `json:"skipped"`      // CSV rows whose format or layout cannot be told apart
}

// QuarantineReplay validates quarantined records again against today's
// rules and gateway list, and promotes those that pass into raw and the
// fact table. Batch by batch, in record-hash order: export the selected
// records' raw text to staging, then the normal split → stage → merge,
// so validation, transform and exactly-once are the same code as any
// load's. Records whose event id is in the fact table are never
// selected, and the merge adds only ids the fact table lacks, so running
// it again promotes nothing twice, and a promoted event that the source
// sends again stays single. Only keys and counts pass through history.
func QuarantineReplay(ctx workflow.Context, in QuarantineReplayInput) (QuarantineReplayResult, error) {
	t := in.Tuning.withDefaults()
	if in.BatchSize <= 0 {
		in.BatchSize = DefaultQuarantineBatch
	}
	res := in.Totals
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (QuarantineReplayResult, error) { return res, nil }); err != nil {
		return res, err
	}
	windowed := !in.Since.IsZero() || !in.Until.IsZero()
	if windowed && !in.Since.Before(in.Until) {
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("window [%s, %s) is empty", in.Since, in.Until), payload.ErrTypeBadInput, nil)
	}
	sa := []temporal.SearchAttributeUpdate{KindKey.ValueSet("quarantine-replay")}
	if windowed {
		sa = append(sa, WindowStartKey.ValueSet(in.Since), WindowEndKey.ValueSet(in.Until))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, sa...); err != nil {
		return res, err
	}
	scope := "all quarantined records"
	if windowed {
		scope = "quarantined records of " + span(in.Since, in.Until)
	}
	if in.Rule != "" {
		scope += " that broke " + in.Rule
	}
	details(ctx, "quarantine replay: "+scope, fmt.Sprintf("%d batches before this run: %d promoted, %d still invalid", res.Batches, res.Promoted, res.StillInvalid))
	gateways, ids, err := fetchGateways(ctx)
	if err != nil {
		return res, err
	}
	info := workflow.GetInfo(ctx)
	for n := 0; ; n++ {
		if n == quarantineBatchesPerRun {
			next := in
			next.Totals = res
			return res, workflow.NewContinueAsNewError(ctx, QuarantineReplay, next)
		}
		id := loadID(info.WorkflowExecution.ID, info.WorkflowExecution.RunID[:8], fmt.Sprint(n))
		var exp payload.ExportQuarantineResult
		if err := workflow.ExecuteActivity(warehouseCtx(ctx, t), payload.ExportQuarantine, payload.ExportQuarantineInput{
			LoadID: id, Rule: in.Rule, Since: in.Since, Until: in.Until, After: in.After, Limit: in.BatchSize,
		}).Get(ctx, &exp); err != nil {
			return res, fmt.Errorf("export quarantine batch %d: %w", res.Batches, err)
		}
		res.Batches++
		res.Selected += exp.Selected
		res.Unreadable += exp.Unreadable
		res.Skipped += exp.Skipped
		if len(exp.Files) > 0 {
			var man payload.Manifest
			if err := workflow.ExecuteActivity(longCtx(ctx, t, ""), payload.SplitQuarantine, payload.SplitQuarantineInput{
				LoadID: id, Files: exp.Files, Gateways: ids,
			}).Get(ctx, &man); err != nil {
				return res, fmt.Errorf("split quarantine batch %s: %w", id, err)
			}
			if len(man.Chunks) > 0 {
				if err := landLoad(ctx, t, payload.SourceQuarantineReplay, man, loadTail{}); err != nil {
					return res, err
				}
			}
			res.Promoted += man.Rows
			res.StillInvalid += man.Quarantined
		}
		cleanupLoad(ctx, t, id)
		if !exp.More {
			break
		}
		in.After = exp.Last
	}
	if res.Promoted > 0 {
		if err := refreshDimensions(ctx, t, gateways); err != nil {
			return res, err
		}
	}
	return res, nil
}
