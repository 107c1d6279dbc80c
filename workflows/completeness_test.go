package workflows_test

import (
	"testing"

	"github.com/ktpipe/ktpipe/workflows"
)

// The daily reconcile's ratio (and status's) must not let quarantined
// records hide missing valid events when the API counted by group_by and
// agreed with fact; a window recounted with count=true counts them.
func TestReconcileCompleteness(t *testing.T) {
	windows := []workflows.WindowCount{{Source: 12, Fact: 11, Quarantined: 2}, {Source: 10, Fact: 10, Quarantined: 1}}
	for _, c := range []struct {
		name    string
		res     workflows.ReconcileResult
		src, wh int64
		ratio   float64
	}{
		{"group_by: fact only, one event missing", workflows.ReconcileResult{Windows: windows, GroupBy: true, Unplaced: 5}, 22, 21, 21.0 / 22},
		{"count=true: quarantine counts", workflows.ReconcileResult{Windows: windows}, 22, 24, 24.0 / 22},
		{"count=true: unplaced explain a shortfall", workflows.ReconcileResult{Windows: []workflows.WindowCount{{Source: 10, Fact: 8}}, Unplaced: 1}, 10, 9, 0.9},
		{"group_by: a window recounted with count=true, its quarantine counts", workflows.ReconcileResult{GroupBy: true,
			Windows: []workflows.WindowCount{{Source: 10, Fact: 10}, {Source: 6, Fact: 5, Quarantined: 1, Recounted: true}}}, 16, 16, 1},
		{"group_by: unplaced explain no window's shortfall, recounted or not", workflows.ReconcileResult{GroupBy: true, Unplaced: 3,
			Windows: []workflows.WindowCount{{Source: 10, Fact: 9}, {Source: 10, Fact: 9, Recounted: true}}}, 20, 18, 0.9},
		{"nothing counted", workflows.ReconcileResult{GroupBy: true}, 0, 0, 1},
	} {
		src, wh, ratio := c.res.Completeness()
		if src != c.src || wh != c.wh || ratio != c.ratio {
			t.Errorf("%s: %d, %d, %v; want %d, %d, %v", c.name, src, wh, ratio, c.src, c.wh, c.ratio)
		}
	}
}
