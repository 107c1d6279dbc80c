// Package staging is the claim check between the source and the
// warehouse: export files and load chunks are kept here by key, and
// workflows carry only the keys, offsets and counts.
package staging

import (
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

// Dir is a Store on a local or mounted file system. Every worker that
// may run a load's activities must see the same directory (one host, or
// a shared volume).
type Dir struct {
	Root string
}

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)

// CheckKey validates a key: slash-separated segments of letters, digits,
// dot, dash and underscore, never "..", so a key cannot leave the root.
func CheckKey(key string) error {
	if !keyPattern.MatchString(key) || strings.Contains(key, "..") {
		return fmt.Errorf("staging key %q: must be slash-separated [A-Za-z0-9._-] segments", key)
	}
	return nil
}

func (d Dir) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, filepath.FromSlash(key)), nil
}

// Create returns a writer whose content appears under key only when Close
// succeeds, so a reader never sees half a chunk and a retried writer
// simply replaces it.
func (d Dir) Create(key string) (io.WriteCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("staging create %s: %w", key, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("staging create %s: %w", key, err)
	}
	return &atomicFile{File: f, final: p}, nil
}

type atomicFile struct {
	*os.File
	final string
}

func (a *atomicFile) Close() error {
	if err := a.File.Close(); err != nil {
		os.Remove(a.Name())
		return err
	}
	return os.Rename(a.Name(), a.final)
}

// Append opens key for appending and returns its current size: a resumed
// download continues from there.
func (d Dir) Append(key string) (*os.File, int64, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, 0, fmt.Errorf("staging append %s: %w", key, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
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

// Truncate empties key, for a download that must start over.
func (d Dir) Truncate(key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Truncate(p, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("staging truncate %s: %w", key, err)
	}
	return nil
}

// Rename moves a finished file to its final key.
func (d Dir) Rename(from, to string) error {
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
	return nil
}

// Open reads key; ErrNotFound when nothing is there.
func (d Dir) Open(key string) (*os.File, error) {
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

// Exists reports whether key holds a finished file.
func (d Dir) Exists(key string) bool {
	p, err := d.path(key)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// List returns the keys under prefix, sorted.
func (d Dir) List(prefix string) ([]string, error) {
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

// RemoveAll deletes everything under prefix.
func (d Dir) RemoveAll(prefix string) error {
	p, err := d.path(prefix)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("staging remove %s: %w", prefix, err)
	}
	return nil
}
