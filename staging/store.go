// Package staging is the claim check between the source and the
// warehouse: export files and load chunks are kept here by key, and
// workflows carry only the keys, offsets and counts (the Manifest and
// Chunk it writes, declared in package payload so workflow code links
// them without the Cloud Storage client).
package staging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ErrNotFound is returned for a key that holds nothing.
var ErrNotFound = errors.New("staging: key not found")

// Store keeps staged files by key. Dir keeps them in a directory (one
// host, or a volume every worker mounts); Bucket in Cloud Storage, so that
// workers on several hosts share them.
type Store interface {
	// Create returns a writer whose content appears under key only when
	// Close succeeds: a reader never sees half a file, and a retried
	// writer simply replaces it. A writer abandoned after an error is
	// dropped with Discard.
	Create(ctx context.Context, key string) (io.WriteCloser, error)
	// Open returns a seekable local file with key's content; ErrNotFound
	// when nothing is there.
	Open(ctx context.Context, key string) (*os.File, error)
	// Size is key's length in bytes; ErrNotFound when nothing is there.
	Size(ctx context.Context, key string) (int64, error)
	// Append opens a local partial file for appending and returns its
	// current size: a resumed download continues from there.
	Append(ctx context.Context, key string) (*os.File, int64, error)
	// Rename publishes a finished partial file under its final key.
	Rename(ctx context.Context, from, to string) error
	// List returns the keys under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// RemoveAll deletes everything under prefix.
	RemoveAll(ctx context.Context, prefix string) error
}

// Discard abandons a writer a Store's Create (or a Sink) returned, after
// an error: a writer that can be discarded (every Store's can) publishes
// nothing and removes its temporary file; any other is closed. So a
// write that failed holds no file open for the rest of the process and
// leaves no scratch file for the clean-up to find.
func Discard(w io.WriteCloser) {
	if d, ok := w.(interface{ Discard() }); ok {
		d.Discard()
		return
	}
	w.Close()
}

// Dir is a Store on a local or mounted file system. Every worker that
// may run a load's activities must see the same directory (one host, or
// a shared volume); otherwise use Bucket.
type Dir struct {
	Root string
}

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)

// CheckKey validates a key: slash-separated segments of letters, digits,
// dot, dash and underscore, never "..", so a key cannot leave the root.
func CheckKey(key string) error {
	if !keyPattern.MatchString(key) || strings.Contains(key, "..") {
		return &KeyError{Key: key}
	}
	return nil
}

// KeyError is a key CheckKey refuses: the same key is refused on every
// retry, so activities fail it at once.
type KeyError struct{ Key string }

func (e *KeyError) Error() string {
	return fmt.Sprintf("staging key %q: must be slash-separated [A-Za-z0-9._-] segments, without \"..\"", e.Key)
}

func (d Dir) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, filepath.FromSlash(key)), nil
}

// Staged files hold events (user identities, prompts' metadata): they
// are the owner's alone.
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// Create writes to a temporary file (0600) and renames it into place on
// Close, after syncing the file and then its directory, so a published
// file survives a crash of the host. A writer whose Write failed never
// publishes: Close removes the temporary file and returns the error.
func (d Dir) Create(_ context.Context, key string) (io.WriteCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	if err := mkdirAllSynced(filepath.Dir(p)); err != nil {
		return nil, fmt.Errorf("staging create %s: %w", key, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("staging create %s: %w", key, err)
	}
	return &atomicFile{f: f, final: p}, nil
}

// mkdirAllSynced creates dir and its missing parents (0700) and syncs the
// parent of each one it created, so the directory of a published file
// survives a crash too.
func mkdirAllSynced(dir string) error {
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// atomicFile is Create's writer. It offers Write and Close only (no
// promoted *os.File methods such as ReadFrom or WriteString), so every
// write error is seen and keeps the file from being published.
type atomicFile struct {
	f     *os.File
	final string
	sync  func(*os.File) error // nil: (*os.File).Sync; tests count calls
	err   error                // the first failed Write
}

func (a *atomicFile) Write(b []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	n, err := a.f.Write(b)
	if err != nil {
		a.err = err
	}
	return n, err
}

// Close publishes the file once its bytes and then the rename are on
// disk; after a failed Write or sync it removes the temporary file.
func (a *atomicFile) Close() error {
	err := a.err
	if err == nil {
		err = a.fsync(a.f)
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(a.f.Name())
		return fmt.Errorf("staging write %s: %w", a.final, err)
	}
	if err := os.Rename(a.f.Name(), a.final); err != nil {
		os.Remove(a.f.Name())
		return fmt.Errorf("staging publish %s: %w", a.final, err)
	}
	dir, err := os.Open(filepath.Dir(a.final))
	if err != nil {
		return fmt.Errorf("staging sync %s: %w", filepath.Dir(a.final), err)
	}
	defer dir.Close()
	if err := a.fsync(dir); err != nil {
		return fmt.Errorf("staging sync %s: %w", filepath.Dir(a.final), err)
	}
	return nil
}

// Discard drops an unfinished file: nothing is published and the
// temporary file is removed, so a write abandoned after an error leaves
// neither a file descriptor nor a .tmp-* file behind.
func (a *atomicFile) Discard() {
	a.f.Close()
	os.Remove(a.f.Name())
}

func (a *atomicFile) fsync(f *os.File) error {
	if a.sync != nil {
		return a.sync(f)
	}
	return f.Sync()
}

// Append opens key for appending and returns its current size.
func (d Dir) Append(_ context.Context, key string) (*os.File, int64, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
		return nil, 0, fmt.Errorf("staging append %s: %w", key, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_APPEND, fileMode)
	if err != nil {
		return nil, 0, fmt.Errorf("staging append %s: %w", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("staging append %s: %w", key, err)
	}
	return f, st.Size(), nil
}

// Rename moves a finished file to its final key.
func (d Dir) Rename(_ context.Context, from, to string) error {
	pf, err := d.path(from)
	if err != nil {
		return err
	}
	pt, err := d.path(to)
	if err != nil {
		return err
	}
	if err := os.Rename(pf, pt); err != nil {
		return fmt.Errorf("staging rename %s: %w", from, err)
	}
	// The rename itself durable, as Create's is: after a crash the final
	// key holds the whole file or is not there.
	if err := syncDir(filepath.Dir(pt)); err != nil {
		return fmt.Errorf("staging rename %s: %w", from, err)
	}
	return nil
}

// Open opens key's file.
func (d Dir) Open(_ context.Context, key string) (*os.File, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("staging open %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("staging open %s: %w", key, err)
	}
	return f, nil
}

// Size stats key's file.
func (d Dir) Size(_ context.Context, key string) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("staging stat %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("staging stat %s: %w", key, err)
	}
	return st.Size(), nil
}

// List walks the directory under prefix.
func (d Dir) List(_ context.Context, prefix string) ([]string, error) {
	root, err := d.path(prefix)
	if err != nil {
		return nil, err
	}
	var keys []string
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".tmp-") {
			rel, _ := filepath.Rel(d.Root, p)
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("staging list %s: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}

// RemoveAll deletes the directory under prefix.
func (d Dir) RemoveAll(_ context.Context, prefix string) error {
	p, err := d.path(prefix)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("staging remove %s: %w", prefix, err)
	}
	return nil
}
