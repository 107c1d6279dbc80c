package warehouse_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

func asSchemaError(err error, target **warehouse.SchemaError) bool { return errors.As(err, target) }

func TestIdentifierValidation(t *testing.T) {
	for _, ok := range []string{"keeptrusts", "kt_events_2026", "_private"} {
		if err := warehouse.ValidateDataset(ok); err != nil {
			t.Errorf("dataset %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "kt-events", "a.b", "x`; DROP TABLE y; --", "1abc", "a b"} {
		if err := warehouse.ValidateDataset(bad); err == nil {
			t.Errorf("dataset %q accepted", bad)
		}
	}
	for _, ok := range []string{"my-project-1", "example.com:my-proj"} {
		if err := warehouse.ValidateProject(ok); err != nil {
			t.Errorf("project %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "UPPER", "a", "proj`x", "-starts-with-dash"} {
		if err := warehouse.ValidateProject(bad); err == nil {
			t.Errorf("project %q accepted", bad)
		}
	}
	if _, err := warehouse.New(nil, "good-project", "bad-dataset", "US"); err == nil {
		t.Error("New accepted a bad dataset")
	}
}

func TestPriceTable(t *testing.T) {
	prices, err := warehouse.LoadPrices("")
	if err != nil || len(prices) < 5 {
		t.Fatalf("shipped prices %d %v", len(prices), err)
	}
	dir := t.TempDir()
	path := dir + "/p.csv"
	writeFile(t, path, "provider,model,input_cost_per_1k,output_cost_per_1k\nx,y,-1,0\n")
	if _, err := warehouse.LoadPrices(path); err == nil {
		t.Error("negative price accepted")
	}
	writeFile(t, path, "user,team\nx,y\n")
	if _, err := warehouse.LoadUserMap(path); err == nil {
		t.Error("user map without department accepted")
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Without a user map every user's team is "unknown": reports leaves that
// view out, and prints it where a map is configured.
func TestPrintedViewsShowTheUserMapTeamOnlyWithAMap(t *testing.T) {
	names := func(vs []warehouse.View) string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Name)
		}
		return strings.Join(out, " ")
	}
	without, with := names(warehouse.PrintedViews(false)), names(warehouse.PrintedViews(true))
	if strings.Contains(without, "report_daily_spend_by_user_team") || !strings.Contains(with, "report_daily_spend_by_user_team") ||
		!strings.HasPrefix(without, "report_daily_spend_by_team ") {
		t.Fatalf("without a map: %s\nwith one: %s", without, with)
	}
}

// A commit's script must fit BigQuery's query text (1,024 KB): at
// MaxBatchChunks with ordinary names it is one transaction; with the
// longest dataset name BigQuery allows it is split, in order, into
// transactions that each fit, every chunk in exactly one.
func TestCommitScriptFitsBigQuerysQueryText(t *testing.T) {
	var loads []warehouse.LoadChunks
	for _, id := range []string{"pull-20261130T090000Z-3f2a9c", "webhook-20261130T090100Z-77b1e0"} {
		l := warehouse.LoadChunks{LoadID: id, Source: "pull"}
		for i := range warehouse.MaxBatchChunks / 2 {
			l.Chunks = append(l.Chunks, staging.Chunk{Index: i, Rows: 50_000, Quarantined: 10, MinDate: "2026-11-30", MaxDate: "2026-11-30"})
		}
		loads = append(loads, l)
	}
	for _, c := range []struct {
		dataset  string
		minSets  int
		maxBytes int
	}{{"keeptrusts", 1, 1_000_000}, {strings.Repeat("d", 1024), 2, 1_000_000}} {
		w, err := warehouse.New(nil, "my-analytics-project", c.dataset, "US")
		if err != nil {
			t.Fatal(err)
		}
		sets, sizes := w.CommitSets(loads)
		if len(sets) < c.minSets || (c.minSets == 1 && len(sets) != 1) {
			t.Fatalf("dataset of %d characters: %d transactions (script bytes %v), want %d", len(c.dataset), len(sets), sizes, c.minSets)
		}
		var order []string
		for i, set := range sets {
			if sizes[i] > c.maxBytes {
				t.Errorf("dataset of %d characters: transaction %d's script is %d bytes, more than %d", len(c.dataset), i, sizes[i], c.maxBytes)
			}
			for _, l := range set {
				for _, ch := range l.Chunks {
					order = append(order, fmt.Sprintf("%s/%d", l.LoadID, ch.Index))
				}
			}
		}
		var want []string
		for _, l := range loads {
			for _, ch := range l.Chunks {
				want = append(want, fmt.Sprintf("%s/%d", l.LoadID, ch.Index))
			}
		}
		if !slices.Equal(order, want) {
			t.Errorf("dataset of %d characters: chunks committed %d, in another order or not once each (want %d)", len(c.dataset), len(order), len(want))
		}
		t.Logf("dataset of %d characters: %d transactions, script bytes %v", len(c.dataset), len(sets), sizes)
	}
}

// TestChunkRowsForFitsALoadInOneCommit: a load's chunks grow past
// KTPIPE_CHUNK_ROWS only as far as one commit needs, and never past
// MaxChunkRows.
func TestChunkRowsForFitsALoadInOneCommit(t *testing.T) {
	const n = warehouse.MaxBatchChunks
	for _, tc := range []struct {
		records   int64
		chunkRows int
		want      int
	}{
		{0, 50_000, 50_000},                  // unknown
		{-1, 50_000, 50_000},                 // nonsense
		{1_000_000, 50_000, 50_000},          // 20 chunks
		{n * 50_000, 50_000, 50_000},         // exactly the bound
		{n*50_000 + 1, 50_000, 50_001},       // one more record
		{100_000_000, 50_000, 208_334},       // a day at 100M
		{n*1_000_000 + 1, 50_000, 1_000_000}, // past what one commit holds
		{100_000_000, 500_000, 500_000},      // configured larger
		{100_000_000, 2_000_000, 2_000_000},  // configured past the bound: left alone
	} {
		got := warehouse.ChunkRowsFor(tc.records, tc.chunkRows, n)
		if got != tc.want {
			t.Errorf("ChunkRowsFor(%d, %d) = %d, want %d", tc.records, tc.chunkRows, got, tc.want)
		}
		if tc.records > 0 && tc.records <= n*warehouse.MaxChunkRows && (tc.records+int64(got)-1)/int64(got) > n {
			t.Errorf("ChunkRowsFor(%d, %d) = %d: %d chunks, more than one commit", tc.records, tc.chunkRows, got, (tc.records+int64(got)-1)/int64(got))
		}
	}
}

// TestChunkRowsForAnotherBound: the bound is a parameter (a test's
// smaller one); none or a negative one leaves the configured rows.
func TestChunkRowsForAnotherBound(t *testing.T) {
	if got := warehouse.ChunkRowsFor(1200, 50, 8); got != 150 {
		t.Errorf("1,200 records in at most 8 chunks: %d rows a chunk, want 150", got)
	}
	if got := warehouse.ChunkRowsFor(1200, 50, 0); got != 50 {
		t.Errorf("no bound: %d rows a chunk, want the configured 50", got)
	}
}
