package activities

import (
	"errors"
	"math"
	"testing"

	"github.com/ktpipe/ktpipe/warehouse"
)

// A failed fold is read past until fact_usage is maxUnfolded times its
// bound; past that the refresh fails with the fold's error.
func TestAFailedFoldFailsTheRefreshOnlyFarPastItsBound(t *testing.T) {
	cancelled := errors.New("transaction aborted due to concurrent update")
	for _, c := range []struct {
		name string
		fold warehouse.Fold
		err  error
		fail bool
	}{
		{"folded", warehouse.Fold{Rows: 60, Bound: 50, Folded: true}, nil, false},
		{"under the bound", warehouse.Fold{Rows: 10, Bound: 50}, nil, false},
		{"failed once", warehouse.Fold{Rows: 60, Bound: 50}, cancelled, false},
		{"failed, at the tolerance", warehouse.Fold{Rows: 500, Bound: 50}, cancelled, false},
		{"failed, past the tolerance", warehouse.Fold{Rows: 501, Bound: 50}, cancelled, true},
		{"count failed", warehouse.Fold{Bound: 50}, cancelled, false},
		{"failed, at the tolerance of the largest bound that has one", warehouse.Fold{Rows: math.MaxInt64 / 10 * 10, Bound: math.MaxInt64 / 10}, cancelled, false},
		{"failed, past it", warehouse.Fold{Rows: math.MaxInt64/10*10 + 1, Bound: math.MaxInt64 / 10}, cancelled, true},
		// 10 times this bound overflows int64: no tolerance to pass.
		{"failed, a bound near the largest", warehouse.Fold{Rows: math.MaxInt64, Bound: math.MaxInt64/2 + 1}, cancelled, false},
	} {
		err := foldFailed(c.fold, c.err)
		if (err != nil) != c.fail {
			t.Errorf("%s: foldFailed(%+v, %v) = %v, want failure %v", c.name, c.fold, c.err, err, c.fail)
		}
		if err != nil && !errors.Is(err, cancelled) {
			t.Errorf("%s: %v does not wrap the fold's error", c.name, err)
		}
	}
}
