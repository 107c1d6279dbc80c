package staging

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
)

// Entry is one file a store holds, as a sweep sees it: staged files, and
// also what only a write in progress (or one that died) leaves behind —
// .tmp-* and .upload-* files, partial downloads (*.part).
type Entry struct {
	// Key is the file's key, or for a temporary file its path under the
	// root with slashes (such names are not valid keys).
	Key     string
	ModTime time.Time
	Size    int64
	// Scratch marks a file in a bucket store's local scratch directory
	// rather than in the bucket.
	Scratch bool
}

// Sweeper is a store whose files can all be listed and removed one by
// one, for retention: the clean-up removes what no load needs any more.
type Sweeper interface {
	// Walk calls fn for every file, in no particular order, and stops
	// at fn's first error.
	Walk(ctx context.Context, fn func(Entry) error) error
	// WalkUnder is Walk of the files under prefix (a key) alone.
	WalkUnder(ctx context.Context, prefix string, fn func(Entry) error) error
	// RemoveEntry deletes one file Walk reported; one already gone is
	// not an error.
	RemoveEntry(ctx context.Context, e Entry) error
}

// SweepScratch removes what writes and downloads that died left in a
// bucket store's local scratch directory (IsTemp files) modified more
// than age before now, at most maxScratchSweep files a call. The scratch
// is this host's: the clean-up workflow, which runs on one worker, sees
// only its own, so each process that stages through a bucket sweeps its
// own.
func (b Bucket) SweepScratch(ctx context.Context, age time.Duration, now time.Time) (files int, bytes int64, err error) {
	err = b.Scratch.Walk(ctx, func(e Entry) error {
		if !IsTemp(e.Key) || now.Sub(e.ModTime) <= age {
			return nil
		}
		if files == maxScratchSweep {
			return errScratchBound
		}
		if err := b.Scratch.RemoveEntry(ctx, e); err != nil {
			return err
		}
		files++
		bytes += e.Size
		return nil
	})
	if errors.Is(err, errScratchBound) {
		err = nil // the rest goes at the next sweep
	}
	return files, bytes, err
}

// maxScratchSweep bounds the files one sweep of a scratch directory
// removes.
const maxScratchSweep = 10_000

var errScratchBound = errors.New("scratch sweep bound reached")

// IsTemp reports whether a file name is a write in progress or left by
// one that died: a key never names such a file.
func IsTemp(key string) bool {
	base := key[strings.LastIndex(key, "/")+1:]
	return strings.HasPrefix(base, ".tmp-") || strings.HasPrefix(base, ".upload-") ||
		strings.HasPrefix(base, ".download-") || strings.HasSuffix(base, ".part")
}

// Walk reports every file under the root.
func (d Dir) Walk(ctx context.Context, fn func(Entry) error) error {
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if e.IsDir() {
			return ctx.Err()
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(d.Root, p)
		if err != nil {
			return err
		}
		return fn(Entry{Key: filepath.ToSlash(rel), ModTime: info.ModTime(), Size: info.Size()})
	})
	if err != nil {
		return fmt.Errorf("staging walk %s: %w", d.Root, err)
	}
	return nil
}

// WalkUnder reports every file under prefix (a key, e.g. "pending"), as
// Walk does: a look at one part of the store that stays cheap however
// much the rest holds.
func (d Dir) WalkUnder(ctx context.Context, prefix string, fn func(Entry) error) error {
	root, err := d.path(prefix)
	if err != nil {
		return err
	}
	return Dir{Root: root}.Walk(ctx, func(e Entry) error {
		e.Key = prefix + "/" + e.Key
		return fn(e)
	})
}

// RemoveEntry deletes one file under the root.
func (d Dir) RemoveEntry(_ context.Context, e Entry) error {
	rel := filepath.FromSlash(e.Key)
	if !filepath.IsLocal(rel) {
		return fmt.Errorf("staging remove %q: not a path under the staging directory", e.Key)
	}
	if err := os.Remove(filepath.Join(d.Root, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("staging remove %s: %w", e.Key, err)
	}
	// A load's directory (loads/<id>, exports/<id>) goes with its last
	// file; top-level directories stay, since a writer (the webhook
	// receiver) may be about to create a file in one.
	for dir := filepath.Dir(rel); strings.Contains(filepath.ToSlash(dir), "/"); dir = filepath.Dir(dir) {
		if os.Remove(filepath.Join(d.Root, dir)) != nil {
			break // not empty, or gone: either way nothing more to prune
		}
	}
	return nil
}

// Walk reports every object under the prefix, then the files of this
// host's scratch directory (partial downloads, uploads that died).
func (b Bucket) Walk(ctx context.Context, fn func(Entry) error) error {
	it := b.Client.Bucket(b.Name).Objects(ctx, &storage.Query{Prefix: b.Prefix})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return fmt.Errorf("staging walk gs://%s/%s: %w", b.Name, b.Prefix, err)
		}
		if err := fn(Entry{Key: strings.TrimPrefix(attrs.Name, b.Prefix), ModTime: attrs.Updated, Size: attrs.Size}); err != nil {
			return err
		}
	}
	return b.Scratch.Walk(ctx, func(e Entry) error {
		e.Scratch = true
		return fn(e)
	})
}

// WalkUnder reports every object under prefix (a key), one listing of
// that part of the bucket; not the scratch directory, whose files (writes
// in progress, partial downloads) are not staged yet.
func (b Bucket) WalkUnder(ctx context.Context, prefix string, fn func(Entry) error) error {
	if err := CheckKey(prefix); err != nil {
		return err
	}
	it := b.Client.Bucket(b.Name).Objects(ctx, &storage.Query{Prefix: b.Prefix + prefix + "/"})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("staging walk gs://%s/%s%s: %w", b.Name, b.Prefix, prefix, err)
		}
		if err := fn(Entry{Key: strings.TrimPrefix(attrs.Name, b.Prefix), ModTime: attrs.Updated, Size: attrs.Size}); err != nil {
			return err
		}
	}
}

// RemoveEntry deletes one object, or one scratch file.
func (b Bucket) RemoveEntry(ctx context.Context, e Entry) error {
	if e.Scratch {
		return b.Scratch.RemoveEntry(ctx, e)
	}
	obj, err := b.object(e.Key)
	if err != nil {
		return err
	}
	if err := obj.Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("staging remove %s: %w", e.Key, err)
	}
	return nil
}
