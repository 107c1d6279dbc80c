package control_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/workflows"
)

// A group_by reconcile does not count the quarantine: its column says
// so rather than show a 0 that reads as "none quarantined".
func TestPrintReconcileMarksTheQuarantineNotCounted(t *testing.T) {
	since := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	w := []workflows.WindowCount{{Since: since, Until: since.Add(time.Hour), Source: 10, Fact: 10, Quarantined: 3}}
	var grouped, counted bytes.Buffer
	control.PrintReconcile(&grouped, workflows.ReconcileResult{Windows: w, GroupBy: true})
	control.PrintReconcile(&counted, workflows.ReconcileResult{Windows: w})
	if row := strings.Fields(strings.Split(grouped.String(), "\n")[1]); len(row) != 6 || row[4] != "-" {
		t.Errorf("group_by row %q, want the quarantined column '-'\n%s", row, grouped.String())
	}
	if !strings.Contains(grouped.String(), "the quarantine is not counted") {
		t.Errorf("group_by footnote:\n%s", grouped.String())
	}
	if row := strings.Fields(strings.Split(counted.String(), "\n")[1]); len(row) != 6 || row[4] != "3" {
		t.Errorf("count=true row %q, want the quarantined column 3\n%s", row, counted.String())
	}
}
