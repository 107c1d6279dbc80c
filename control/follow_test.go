package control_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/warehouse"
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
	// A window counted again with count=true shows its quarantine, marked,
	// and the footnote its rule.
	w = append(w, workflows.WindowCount{Since: since.Add(time.Hour), Until: since.Add(2 * time.Hour), Source: 6, Fact: 5, Quarantined: 1, Recounted: true})
	var recounted bytes.Buffer
	control.PrintReconcile(&recounted, workflows.ReconcileResult{Windows: w, GroupBy: true, Unplaced: 2})
	if row := strings.Fields(strings.Split(recounted.String(), "\n")[2]); len(row) != 7 || row[4] != "1" || row[5] != "*" {
		t.Errorf("recounted row %q, want the quarantined column 1 *\n%s", row, recounted.String())
	}
	if !strings.Contains(recounted.String(), "* 1 windows whose group_by count differed from fact, counted again with count=true (gap = api count - fact - quarantined); 0 windows with an unexplained gap") {
		t.Errorf("recounted footnote:\n%s", recounted.String())
	}
}

// An audit's row printed: whether its counts were taken or carried.
func TestPrintAuditSaysWhetherItCounted(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	row := warehouse.AuditRow{AuditedAt: at, CountedAt: at, FactRows: 100, FactDuplicateRows: 1, APICount: 50, WarehouseCount: 49,
		CompletenessStart: at.Add(-4 * time.Hour).Truncate(time.Hour), CompletenessEnd: at.Add(-time.Hour).Truncate(time.Hour), IngestionLagSeconds: 12, APINewest: at.Add(-time.Minute)}
	var out bytes.Buffer
	if err := control.PrintAudit(&out, row); err != nil || out.String() !=
		"audited at 2026-12-01T09:30:00Z: lag 12s; duplicates 1 of 100 fact rows (counted now); completeness 49 of 50 API events, 12-01 05:00 .. 12-01 08:00; 0 schema violations\n" {
		t.Errorf("counted: %q %v", out.String(), err)
	}
	row.CountedAt = at.Add(-20 * time.Minute)
	out.Reset()
	if err := control.PrintAudit(&out, row); err != nil || !strings.Contains(out.String(), "(carried from the audit of 2026-12-01T09:10:00Z: nothing committed since)") {
		t.Errorf("carried: %q %v", out.String(), err)
	}
	// No event at the API: no lag to tell.
	row.APINewest = time.Time{}
	out.Reset()
	if err := control.PrintAudit(&out, row); err != nil || !strings.Contains(out.String(), "lag unknown (no event on one side);") {
		t.Errorf("no API event: %q %v", out.String(), err)
	}
}
