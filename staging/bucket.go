package staging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
)

// Bucket is a Store in a Cloud Storage bucket, for workers on more than
// one host: a chunk split on one worker is staged by another, and a
// replay from staging works on any worker. Scratch is a local directory
// for what must be a local file: a download in progress (published by
// Rename once verified) and the copies Open fetches (BigQuery load jobs
// and the decoders want a seekable file).
type Bucket struct {
	Client  *storage.Client
	Name    string
	Prefix  string // prepended to every key, e.g. "ktpipe/"; may be empty
	Scratch Dir
}

func (b Bucket) object(key string) (*storage.ObjectHandle, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	return b.Client.Bucket(b.Name).Object(b.Prefix + key), nil
}

// Create writes to a scratch file and uploads it on Close. An object
// appears only when its upload completes, so readers on other hosts see
// the whole file or nothing.
func (b Bucket) Create(ctx context.Context, key string) (io.WriteCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.Scratch.Root, dirMode); err != nil {
		return nil, fmt.Errorf("staging create %s: %w", key, err)
	}
	f, err := os.CreateTemp(b.Scratch.Root, ".upload-*")
	if err != nil {
		return nil, fmt.Errorf("staging create %s: %w", key, err)
	}
	return &uploadOnClose{f: f, publish: func() error { return b.upload(ctx, f.Name(), key) }}, nil
}

// uploadOnClose is Bucket.Create's writer: Write and Close only, so every
// write error is seen and keeps the object from being uploaded.
type uploadOnClose struct {
	f       *os.File
	publish func() error
	err     error // the first failed Write
}

func (u *uploadOnClose) Write(b []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	n, err := u.f.Write(b)
	if err != nil {
		u.err = err
	}
	return n, err
}

func (u *uploadOnClose) Close() error {
	defer os.Remove(u.f.Name())
	if err := u.f.Close(); err != nil {
		return err
	}
	if u.err != nil {
		return fmt.Errorf("staging write: %w", u.err)
	}
	return u.publish()
}

// Discard drops an unfinished file: nothing is uploaded and the scratch
// file is removed.
func (u *uploadOnClose) Discard() {
	u.f.Close()
	os.Remove(u.f.Name())
}

// upload copies a local file to key's object.
func (b Bucket) upload(ctx context.Context, path, key string) error {
	obj, err := b.object(key)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("staging upload %s: %w", key, err)
	}
	defer f.Close()
	w := obj.NewWriter(ctx)
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return fmt.Errorf("staging upload %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("staging upload %s: %w", key, err)
	}
	return nil
}

// Open downloads key's object into an unlinked scratch file: the copy is
// fresh every time (a retried split may have replaced the object) and
// disappears when the caller closes it.
func (b Bucket) Open(ctx context.Context, key string) (*os.File, error) {
	obj, err := b.object(key)
	if err != nil {
		return nil, err
	}
	r, err := obj.NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, fmt.Errorf("staging open %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("staging open %s: %w", key, err)
	}
	defer r.Close()
	if err := os.MkdirAll(b.Scratch.Root, dirMode); err != nil {
		return nil, fmt.Errorf("staging open %s: %w", key, err)
	}
	f, err := os.CreateTemp(b.Scratch.Root, ".download-*")
	if err != nil {
		return nil, fmt.Errorf("staging open %s: %w", key, err)
	}
	os.Remove(f.Name()) // the open file stays readable until closed
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging open %s: %w", key, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging open %s: %w", key, err)
	}
	return f, nil
}

// Size reads key's object attributes.
func (b Bucket) Size(ctx context.Context, key string) (int64, error) {
	obj, err := b.object(key)
	if err != nil {
		return 0, err
	}
	attrs, err := obj.Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return 0, fmt.Errorf("staging stat %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("staging stat %s: %w", key, err)
	}
	return attrs.Size, nil
}

// Append keeps a partial file in scratch: a download resumed on the same
// host continues from its bytes, one resumed on another host starts over.
func (b Bucket) Append(ctx context.Context, key string) (*os.File, int64, error) {
	return b.Scratch.Append(ctx, key)
}

// Rename uploads a finished scratch file to the final key's object and
// removes it from scratch.
func (b Bucket) Rename(ctx context.Context, from, to string) error {
	p, err := b.Scratch.path(from)
	if err != nil {
		return err
	}
	if err := b.upload(ctx, p, to); err != nil {
		return err
	}
	return b.Scratch.RemoveAll(ctx, from)
}

// List lists the objects under prefix.
func (b Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	if err := CheckKey(prefix); err != nil {
		return nil, err
	}
	it := b.Client.Bucket(b.Name).Objects(ctx, &storage.Query{Prefix: b.Prefix + prefix + "/"})
	var keys []string
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("staging list %s: %w", prefix, err)
		}
		keys = append(keys, strings.TrimPrefix(attrs.Name, b.Prefix))
	}
	sort.Strings(keys)
	return keys, nil
}

// RemoveAll deletes the object named prefix, the objects under it and
// the scratch files.
func (b Bucket) RemoveAll(ctx context.Context, prefix string) error {
	keys, err := b.List(ctx, prefix)
	if err != nil {
		return err
	}
	keys = append(keys, prefix)
	for _, k := range keys {
		obj, err := b.object(k)
		if err != nil {
			return err
		}
		if err := obj.Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return fmt.Errorf("staging remove %s: %w", k, err)
		}
	}
	return b.Scratch.RemoveAll(ctx, prefix)
}
