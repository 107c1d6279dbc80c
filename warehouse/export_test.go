package warehouse

import (
	"context"
	"encoding/json"
	"time"
)

// SetDDLHook makes every change to a view (create, replace, delete)
// call f first with what and which, so tests can count them.
func (w *Warehouse) SetDDLHook(f func(what string)) { w.onDDL = f }

// CountRows is countRows: a table's rows, -1 when it does not exist.
func (w *Warehouse) CountRows(ctx context.Context, table string) (int64, error) {
	return w.countRows(ctx, table)
}

// SetCommitHook makes CommitLoads call f after each set's transaction and
// before its look for doubled rows, so tests can land a commit there, as
// one that ran beside it would; an error f returns ends CommitLoads
// there, as a worker killed between the two would.
func (w *Warehouse) SetCommitHook(f func() error) { w.onCommit = f }

// CommitSets is how CommitLoads splits loads into transactions whose
// script fits BigQuery's query text, and each one's script length.
func (w *Warehouse) CommitSets(loads []LoadChunks) (sets [][]LoadChunks, scriptBytes []int) {
	sets = w.fitQueryText(loads)
	for _, s := range sets {
		scriptBytes = append(scriptBytes, len(w.commitScript(s)))
	}
	return sets, scriptBytes
}

// Carries is carries: which of an earlier audit's counts an audit takes.
var Carries = carries

// InsertLiveAsStamped streams rows with the ingested_at they have.
func (w *Warehouse) InsertLiveAsStamped(ctx context.Context, rows []json.RawMessage) error {
	return w.insertLive(ctx, rows, time.Time{})
}

// InSQLOrder is inSQLOrder: the order a statement's parameters are
// passed in.
var InSQLOrder = inSQLOrder
