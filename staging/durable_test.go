package staging

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// breakWrites swaps a Create writer's file for a read-only handle on the
// same temporary file: the next Write fails (as on a full disk) while
// Close would still succeed.
func breakWrites(t *testing.T, w io.WriteCloser) {
	t.Helper()
	var fp **os.File
	switch w := w.(type) {
	case *atomicFile:
		fp = &w.f
	case *uploadOnClose:
		fp = &w.f
	default:
		t.Fatalf("writer %T", w)
	}
	ro, err := os.Open((*fp).Name())
	if err != nil {
		t.Fatal(err)
	}
	(*fp).Close()
	*fp = ro
}

// A writer whose Write failed must not publish what it had written, even
// when its caller closes it as usual: a partial delivery or chunk would
// otherwise be loaded as if whole.
func TestCreateNeverPublishesAfterAFailedWrite(t *testing.T) {
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "b"})
	dir := Dir{Root: t.TempDir()}
	for name, s := range map[string]Store{
		"dir":    dir,
		"bucket": Bucket{Client: gcs.Client(), Name: "b", Scratch: Dir{Root: t.TempDir()}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			const key = "webhooks/partial.json"
			w, err := s.Create(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte(`[{"id":"1"},`)); err != nil {
				t.Fatal(err)
			}
			breakWrites(t, w)
			if _, err := w.Write([]byte(`{"id":"2"}]`)); err == nil {
				t.Fatal("the broken write succeeded")
			}
			if err := w.Close(); err == nil {
				t.Fatal("Close after a failed Write succeeded")
			}
			if _, err := s.Size(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a partial file was published: %v", err)
			}
		})
	}
	left, _ := filepath.Glob(filepath.Join(dir.Root, "webhooks", ".tmp-*"))
	if len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// Close answers only once the file's bytes, then the rename, are on disk:
// the file is synced before it is renamed, its directory after; a failed
// sync fails Close and publishes nothing.
func TestCreateSyncsTheFileThenItsDirectory(t *testing.T) {
	root := t.TempDir()
	final := filepath.Join(root, "d", "f.json")
	if err := mkdirAllSynced(filepath.Dir(final)); err != nil {
		t.Fatal(err)
	}
	open := func(sync func(*os.File) error) *atomicFile {
		f, err := os.CreateTemp(filepath.Dir(final), ".tmp-*")
		if err != nil {
			t.Fatal(err)
		}
		return &atomicFile{f: f, final: final, sync: sync}
	}

	var synced []string
	a := open(func(f *os.File) error {
		_, err := os.Stat(final)
		synced = append(synced, filepath.Base(f.Name())+map[bool]string{true: " (published)", false: ""}[err == nil])
		return f.Sync()
	})
	tmp := filepath.Base(a.f.Name())
	a.Write([]byte("[]"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{tmp, "d (published)"}; len(synced) != 2 || synced[0] != want[0] || synced[1] != want[1] {
		t.Fatalf("synced %q, want %q", synced, want)
	}

	os.Remove(final)
	a = open(func(*os.File) error { return errors.New("disk gone") })
	a.Write([]byte("[]"))
	if err := a.Close(); err == nil {
		t.Fatal("Close succeeded though the sync failed")
	}
	if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("published without a sync: %v", err)
	}
}

// Staged files hold events: 0600 files in 0700 directories, for files
// written whole (Create) and downloads (Append, then Rename).
func TestStagedFilesArePrivate(t *testing.T) {
	ctx := context.Background()
	d := Dir{Root: filepath.Join(t.TempDir(), "staging")}
	w, err := d.Create(ctx, "webhooks/a.json")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("[]"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, _, err := d.Append(ctx, "exports/l1/e.part")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := d.Rename(ctx, "exports/l1/e.part", "exports/l1/e.data"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		"":                  0o700 | os.ModeDir,
		"webhooks":          0o700 | os.ModeDir,
		"webhooks/a.json":   0o600,
		"exports/l1":        0o700 | os.ModeDir,
		"exports/l1/e.data": 0o600,
	} {
		st, err := os.Stat(filepath.Join(d.Root, path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %s, want %s", path, st.Mode(), want)
		}
	}
}
