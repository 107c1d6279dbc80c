package activities

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// stage writes data under key in a fresh local store.
func stage(t *testing.T, key string, data []byte) staging.Dir {
	store := staging.Dir{Root: t.TempDir()}
	w, err := store.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return store
}

// TestSplitExportAppliesTheDecoderLimits: the configured record cap
// quarantines a big record, and a gzip bomb fails the split for good
// (non-retryable), not after retries.
func TestSplitExportAppliesTheDecoderLimits(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()

	big := `{"pad":"` + strings.Repeat("x", 4000) + `"}` + "\n"
	a := &Activities{Store: stage(t, "exports/big.ndjson", []byte(big)), ChunkRows: 10}
	a.Limits.MaxRecordBytes, a.Limits.MaxInflateRatio = 2048, 100
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.SplitExport, payload.SplitInput{LoadID: "L1", Source: "export", Key: "exports/big.ndjson", Format: "ndjson"})
	if err != nil {
		t.Fatal(err)
	}
	var man payload.Manifest
	v.Get(&man)
	if man.Records != 1 || man.Quarantined != 1 {
		t.Fatalf("manifest %+v, want the 4 KB record quarantined under a 2 KiB cap", man)
	}
	q, err := os.ReadFile(filepath.Join(a.Store.(staging.Dir).Root, man.Chunks[0].QuarantineKey))
	if err != nil || !strings.Contains(string(q), `"rule":"record too large"`) {
		t.Fatalf("quarantine %.200q %v, want rule record too large", q, err)
	}

	// 200 gzip members of 1 MiB of spaces each: ~200 KiB inflating to
	// 200 MiB.
	var member bytes.Buffer
	zw := gzip.NewWriter(&member)
	zw.Write(bytes.Repeat([]byte(" "), 1<<20))
	zw.Close()
	bomb := append([]byte(nil), member.Bytes()...)
	bomb = append(bytes.Repeat(member.Bytes(), 200), bomb...)
	a = &Activities{Store: stage(t, "exports/bomb.ndjson.gz", bomb), ChunkRows: 10}
	env = s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err = env.ExecuteActivity(a.SplitExport, payload.SplitInput{LoadID: "L2", Source: "export", Key: "exports/bomb.ndjson.gz", Format: "ndjson", Gzip: true})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != payload.ErrTypeMalformed || !strings.Contains(err.Error(), "gzip bomb") {
		t.Fatalf("split of a gzip bomb: %v, want a non-retryable %s error", err, payload.ErrTypeMalformed)
	}
}

// A staged file that fails to read under the decoder (here: a directory,
// whose reads fail with EISDIR, standing in for a disk error) is a
// retryable failure of the store, not a malformed file that is never
// retried.
func TestSplitRetriesAReadErrorOfTheStore(t *testing.T) {
	store := staging.Dir{Root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(store.Root, "exports", "dir.ndjson"), 0o700); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{Store: store, ChunkRows: 10}
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.SplitExport, payload.SplitInput{LoadID: "L3", Source: "export", Key: "exports/dir.ndjson", Format: "ndjson"})
	var ae *temporal.ApplicationError
	if err == nil || (errors.As(err, &ae) && (ae.NonRetryable() || ae.Type() == payload.ErrTypeMalformed)) {
		t.Fatalf("split of an unreadable staged file: %v, want a retryable error", err)
	}
	if !strings.Contains(err.Error(), "staging store") {
		t.Fatalf("error %q does not say the store failed", err)
	}
}

// TestSplitExportSizesChunksForOneCommit: an export whose row_count would
// be more than warehouse.MaxBatchChunks chunks of KTPIPE_CHUNK_ROWS is
// split into larger chunks, so it commits in one transaction; without a
// count, the chunks are KTPIPE_CHUNK_ROWS.
func TestSplitExportSizesChunksForOneCommit(t *testing.T) {
	const records = 1000
	var text strings.Builder
	for i := range records {
		text.WriteString(jsonEvent(qid(i), gwKnown, "allow") + "\n")
	}
	for _, tc := range []struct {
		name       string
		count      int64
		wantChunks int
	}{
		{"row_count known", records, (records + 2) / 3}, // ceil(1000/480) = 3 rows a chunk
		{"row_count unknown", 0, records},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			a := &Activities{Store: stage(t, "exports/e.ndjson", []byte(text.String())), ChunkRows: 1}
			env.RegisterActivity(a)
			v, err := env.ExecuteActivity(a.SplitExport, payload.SplitInput{LoadID: "L1", Source: "export",
				Key: "exports/e.ndjson", Format: "ndjson", Gateways: []string{gwKnown}, Records: tc.count})
			if err != nil {
				t.Fatal(err)
			}
			var man payload.Manifest
			v.Get(&man)
			if man.Rows != records || len(man.Chunks) != tc.wantChunks {
				t.Fatalf("%d rows in %d chunks, want %d in %d", man.Rows, len(man.Chunks), records, tc.wantChunks)
			}
		})
	}
	// A day at 100M events: 480 chunks, whose files the default byte
	// bound would close first (a staged row is ~0.85 KB).
	a := &Activities{ChunkRows: 50_000}
	// Room for staged rows of 2 KB events (~2.4 KB) with a margin, and
	// files no larger than one upload may be.
	if got := a.exportChunks(100_000_000); got.rows != 208_334 || got.bytes < int64(got.rows)*3500 || got.bytes > staging.MaxGrownChunkBytes {
		t.Fatalf("export chunks %+v, want 208,334 rows, 3,500 bytes a row at least, %d at most", got, staging.MaxGrownChunkBytes)
	}
	a.ExportChunks = 10 * warehouse.MaxBatchChunks // never past one commit
	if got := a.exportChunks(100_000_000); got.rows != 208_334 {
		t.Fatalf("export chunks %+v under a bound past MaxBatchChunks, want 208,334 rows", got)
	}
	if got := a.exportChunks(1_000_000); got != a.chunks() {
		t.Fatalf("export chunks %+v, want the configured %+v", got, a.chunks())
	}
}

// TestAFailedSplitLeavesNoFileOpenOrHalfWritten: a split that breaks on
// a malformed record, with a chunk and its quarantine file open, drops
// both: no temporary file stays in the store for the clean-up, and the
// worker holds none open.
func TestAFailedSplitLeavesNoFileOpenOrHalfWritten(t *testing.T) {
	// A JSON array cut short: the stream breaks after 16 records.
	var text strings.Builder
	text.WriteString("[")
	for i := range 15 {
		text.WriteString(jsonEvent(qid(i), gwKnown, "allow") + ",")
	}
	text.WriteString(jsonEvent(qid(15), gwKnown, "maybe") + ",") // quarantined: the open chunk has both files
	text.WriteString(`{"id": "broken`)
	store := stage(t, "exports/broken.json", []byte(text.String()))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{Store: store, ChunkRows: 10}
	env.RegisterActivity(a)
	open := openFiles(t)
	_, err := env.ExecuteActivity(a.SplitExport, payload.SplitInput{LoadID: "L4", Source: "export", Key: "exports/broken.json", Format: "json"})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != payload.ErrTypeMalformed {
		t.Fatalf("split of a broken file: %v, want %s", err, payload.ErrTypeMalformed)
	}
	var temps []string
	store.Walk(context.Background(), func(e staging.Entry) error {
		if staging.IsTemp(e.Key) {
			temps = append(temps, e.Key)
		}
		return nil
	})
	if len(temps) > 0 {
		t.Errorf("the failed split left %q in the store", temps)
	}
	if n := openFiles(t); n > open {
		t.Errorf("%d files open after the split, %d before", n, open)
	}
}

// openFiles counts the process's open file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(fds)
}
