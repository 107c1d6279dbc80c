package staging_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/ktpipe/ktpipe/staging"
)

// stores are the Store implementations under one contract. The bucket
// runs on fake-gcs-server, the Cloud Storage emulator, through the real
// client.
func stores(t *testing.T) map[string]staging.Store {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, NoListener: false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "ktpipe-test"})
	return map[string]staging.Store{
		"dir":    staging.Dir{Root: t.TempDir()},
		"bucket": staging.Bucket{Client: srv.Client(), Name: "ktpipe-test", Prefix: "p/", Scratch: staging.Dir{Root: t.TempDir()}},
	}
}

func read(t *testing.T, s staging.Store, key string) string {
	t.Helper()
	f, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			w, err := s.Create(ctx, "loads/l1/a.ndjson")
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "half")
			if _, err := s.Size(ctx, "loads/l1/a.ndjson"); !errors.Is(err, staging.ErrNotFound) {
				t.Fatalf("visible before Close: %v", err)
			}
			io.WriteString(w, " and whole")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := read(t, s, "loads/l1/a.ndjson"); got != "half and whole" {
				t.Fatalf("content %q", got)
			}
			if n, err := s.Size(ctx, "loads/l1/a.ndjson"); err != nil || n != 14 {
				t.Fatalf("size %d %v", n, err)
			}

			// A download: appended in two attempts, then published.
			f, off, err := s.Append(ctx, "exports/l1/e.data.part")
			if err != nil || off != 0 {
				t.Fatalf("append %d %v", off, err)
			}
			io.WriteString(f, "abc")
			f.Close()
			f, off, err = s.Append(ctx, "exports/l1/e.data.part")
			if err != nil || off != 3 {
				t.Fatalf("resumed append at %d %v, want 3", off, err)
			}
			io.WriteString(f, "def")
			f.Close()
			if err := s.Rename(ctx, "exports/l1/e.data.part", "exports/l1/e.data"); err != nil {
				t.Fatal(err)
			}
			if got := read(t, s, "exports/l1/e.data"); got != "abcdef" {
				t.Fatalf("published %q", got)
			}

			keys, err := s.List(ctx, "loads/l1")
			if err != nil || len(keys) != 1 || keys[0] != "loads/l1/a.ndjson" {
				t.Fatalf("list %v %v", keys, err)
			}
			if err := s.RemoveAll(ctx, "loads/l1"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Open(ctx, "loads/l1/a.ndjson"); !errors.Is(err, staging.ErrNotFound) {
				t.Fatalf("open after remove: %v", err)
			}
			if got := read(t, s, "exports/l1/e.data"); got != "abcdef" {
				t.Fatalf("remove took a sibling prefix: %q", got)
			}
			if err := s.RemoveAll(ctx, "exports/l1/e.data"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Size(ctx, "exports/l1/e.data"); !errors.Is(err, staging.ErrNotFound) {
				t.Fatalf("a single file survived its removal: %v", err)
			}
			if _, err := s.Create(ctx, "../escape"); err == nil {
				t.Fatal("a key leaving the store was accepted")
			}
		})
	}
}

// Two workers on different hosts: what one stages, the other reads.
func TestBucketIsSharedAcrossScratchDirs(t *testing.T) {
	ctx := context.Background()
	b := stores(t)["bucket"].(staging.Bucket)
	other := b
	other.Scratch = staging.Dir{Root: t.TempDir()}
	w, err := b.Create(ctx, "loads/l2/chunk-00000.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "rows")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, other, "loads/l2/chunk-00000.ndjson"); got != "rows" {
		t.Fatalf("other host read %q", got)
	}
}

// TestDiscardPublishesNothingAndLeavesNoScratch: a writer abandoned after
// an error publishes nothing and leaves no temporary file, in either
// store (a failed split used to leave them for the clean-up).
func TestDiscardPublishesNothingAndLeavesNoScratch(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			w, err := s.Create(ctx, "loads/l2/chunk-00000.ndjson")
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "half a chunk")
			staging.Discard(w)
			if _, err := s.Size(ctx, "loads/l2/chunk-00000.ndjson"); !errors.Is(err, staging.ErrNotFound) {
				t.Fatalf("a discarded file is visible: %v", err)
			}
			var left []string
			err = s.(staging.Sweeper).Walk(ctx, func(e staging.Entry) error {
				left = append(left, e.Key)
				return nil
			})
			if err != nil || len(left) != 0 {
				t.Fatalf("after Discard the store holds %q (%v), want nothing", left, err)
			}
		})
	}
}
