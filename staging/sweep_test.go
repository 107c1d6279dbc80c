package staging

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestDirWalkSeesTemporaryFilesAndRemoveEntryPrunesLoadDirs(t *testing.T) {
	ctx := context.Background()
	d := Dir{Root: t.TempDir()}
	for _, name := range []string{"loads/l1/chunk-00000.ndjson", "loads/l1/.tmp-123", "exports/l1/e.data.part", "webhooks/a.json", ".upload-9"} {
		p := filepath.Join(d.Root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var entries []Entry
	if err := d.Walk(ctx, func(e Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range entries {
		keys = append(keys, e.Key)
		if e.Size != 1 || e.ModTime.IsZero() {
			t.Errorf("%s: size %d, modified %s", e.Key, e.Size, e.ModTime)
		}
	}
	sort.Strings(keys)
	if got := strings.Join(keys, " "); got != ".upload-9 exports/l1/e.data.part loads/l1/.tmp-123 loads/l1/chunk-00000.ndjson webhooks/a.json" {
		t.Fatalf("walk saw %s", got)
	}
	for _, e := range entries {
		if err := d.RemoveEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Load directories go with their last file; top-level ones stay.
	for dir, want := range map[string]bool{"loads/l1": false, "exports/l1": false, "loads": true, "webhooks": true} {
		if _, err := os.Stat(filepath.Join(d.Root, dir)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", dir, err == nil, want)
		}
	}
	if err := d.RemoveEntry(ctx, Entry{Key: "../outside"}); err == nil {
		t.Fatal("removed a path outside the root")
	}
	if err := d.RemoveEntry(ctx, Entry{Key: "webhooks/a.json"}); err != nil {
		t.Fatalf("removing a file already gone: %v", err)
	}
}
