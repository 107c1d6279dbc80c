package staging_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/staging"
)

// Both stores can be swept: Walk sees every staged file (and a partial
// download in scratch), RemoveEntry deletes exactly the one named.
func TestSweeperContract(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"loads/l1/chunk-00000.ndjson", "webhooks/a.json"} {
				w, err := s.Create(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(w, "data")
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			f, _, err := s.Append(ctx, "exports/l1/e.data.part")
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			sw := s.(staging.Sweeper)
			walk := func() (keys []string, entries []staging.Entry) {
				t.Helper()
				if err := sw.Walk(ctx, func(e staging.Entry) error {
					if e.ModTime.IsZero() {
						t.Errorf("%s has no modification time", e.Key)
					}
					keys = append(keys, e.Key)
					entries = append(entries, e)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				sort.Strings(keys)
				return keys, entries
			}
			keys, entries := walk()
			if got := strings.Join(keys, " "); got != "exports/l1/e.data.part loads/l1/chunk-00000.ndjson webhooks/a.json" {
				t.Fatalf("walk saw %s", got)
			}
			for _, e := range entries {
				if e.Key == "loads/l1/chunk-00000.ndjson" || e.Key == "exports/l1/e.data.part" {
					if err := sw.RemoveEntry(ctx, e); err != nil {
						t.Fatal(err)
					}
				}
			}
			if keys, _ := walk(); strings.Join(keys, " ") != "webhooks/a.json" {
				t.Fatalf("after removing, walk saw %v", keys)
			}
		})
	}
}

// WalkUnder sees the files under its prefix, with their times and keys
// as Walk names them, and nothing else; a prefix not there is no error.
func TestWalkUnder(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"pending/l1/load.json", "pending/l2/load.json", "pendingx/l3/load.json", "loads/l1/chunk-00000.ndjson"} {
				w, err := s.Create(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(w, "{}")
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			walk := func(prefix string) string {
				t.Helper()
				var keys []string
				if err := s.(staging.Sweeper).WalkUnder(ctx, prefix, func(e staging.Entry) error {
					if e.ModTime.IsZero() || e.Size != 2 {
						t.Errorf("%s: time %v, size %d", e.Key, e.ModTime, e.Size)
					}
					keys = append(keys, e.Key)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				sort.Strings(keys)
				return strings.Join(keys, " ")
			}
			if got := walk("pending"); got != "pending/l1/load.json pending/l2/load.json" {
				t.Errorf("WalkUnder(pending) saw %q", got)
			}
			if got := walk("none"); got != "" {
				t.Errorf("WalkUnder(none) saw %q", got)
			}
			if err := s.(staging.Sweeper).WalkUnder(ctx, "../x", func(staging.Entry) error { return nil }); err == nil {
				t.Error("WalkUnder(../x): no error")
			}
		})
	}
}

// A bucket store's scratch keeps what a live write or download may still
// need: SweepScratch removes only temporary files older than the age,
// and never a file that is not one.
func TestSweepScratchRemovesOnlyOldTemporaryFiles(t *testing.T) {
	root := t.TempDir()
	b := staging.Bucket{Scratch: staging.Dir{Root: root}}
	now := time.Now()
	files := map[string]time.Duration{
		".upload-1":                48 * time.Hour,
		"exports/e1/exp.data.part": 48 * time.Hour,
		".upload-2":                time.Hour,
		"notes.txt":                48 * time.Hour,
	}
	for name, age := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("12345"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	n, size, err := b.SweepScratch(context.Background(), 24*time.Hour, now)
	if err != nil || n != 2 || size != 10 {
		t.Fatalf("swept %d files, %d bytes, %v; want the 2 old temporary files", n, size, err)
	}
	var left []string
	b.Scratch.Walk(context.Background(), func(e staging.Entry) error { left = append(left, e.Key); return nil })
	slices.Sort(left)
	if got := strings.Join(left, ","); got != ".upload-2,notes.txt" {
		t.Errorf("left %s, want the recent upload and the file that is not ktpipe's", got)
	}
}
