package keeptrusts_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ktpipe/ktpipe/keeptrusts"
)

// serve returns a client of a server that answers every request with h.
func serve(t *testing.T, h http.HandlerFunc) *keeptrusts.Client {
	t.Helper()
	return client(t, server(t, h).URL)
}

// partFile returns a file holding part, as an earlier attempt left it.
func partFile(t *testing.T, part []byte) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "export.part"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.Write(part)
	return f
}

func fileIs(t *testing.T, f *os.File, want []byte) {
	t.Helper()
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file has %d bytes %q..., want %d bytes", len(got), got[:min(len(got), 20)], len(want))
	}
}

var exportBody = bytes.Repeat([]byte("0123456789"), 10) // 100 bytes

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// The contract allows size_bytes and sha256 to be null. A file that
// disagrees with the size that is known, or with the ETag, must not be
// accepted; each case names what the server sends.
func TestDownloadWithoutSHA256RejectsWrongFiles(t *testing.T) {
	size := int64(len(exportBody))
	tests := []struct {
		name string
		size *int64
		h    http.HandlerFunc
	}{
		{"200 longer than size_bytes, no Content-Length", &size, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush() // chunked: no Content-Length to check first
			w.Write(exportBody)
			w.Write([]byte("extra"))
		}},
		{"200 longer than size_bytes", &size, func(w http.ResponseWriter, r *http.Request) {
			w.Write(append(exportBody, "extra"...))
		}},
		{"clean 200 shorter than size_bytes", &size, func(w http.ResponseWriter, r *http.Request) {
			w.Write(exportBody[:60])
		}},
		{"ETag is not the sha256 of the body", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", etag([]byte("another file")))
			w.Write(exportBody)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, tt.h)
			f := partFile(t, nil)
			err := c.Download(context.Background(), keeptrusts.Export{ID: "exp_1", SizeBytes: tt.size}, f, keeptrusts.DownloadOptions{})
			var ce *keeptrusts.ChecksumError
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want a ChecksumError", err)
			}
			fileIs(t, f, nil)
		})
	}
}

// A 206 must continue where the partial file stops; one that starts
// elsewhere (here at byte 0) is not appended: the download starts over.
func TestDownloadRefusesA206FromTheWrongOffset(t *testing.T) {
	var mu sync.Mutex
	var ranges []string
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", "bytes 0-99/100")
			w.WriteHeader(http.StatusPartialContent)
		}
		w.Write(exportBody)
	})
	size := int64(len(exportBody))
	f := partFile(t, exportBody[:40])
	if err := c.Download(context.Background(), keeptrusts.Export{ID: "exp_1", SizeBytes: &size}, f, keeptrusts.DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	fileIs(t, f, exportBody)
	if strings.Join(ranges, ",") != "bytes=40-," {
		t.Fatalf("requests with Range %q, want bytes=40- then none", ranges)
	}
}

// With size_bytes and sha256 null, a partial file that is already whole
// gets 416 for bytes=N-. It is done when Content-Range or the ETag proves
// it, and downloaded again when nothing does: never a final error.
func TestDownloadOf416WithoutSize(t *testing.T) {
	tests := []struct {
		name    string
		part    []byte
		headers map[string]string
		again   bool // downloaded again from byte 0
	}{
		{"Content-Range total matches", exportBody, map[string]string{"Content-Range": "bytes */100"}, false},
		{"ETag matches", exportBody, map[string]string{"ETag": etag(exportBody)}, false},
		{"nothing to verify with", exportBody, nil, true},
		{"Content-Range total differs", exportBody[:90], map[string]string{"Content-Range": "bytes */100"}, true},
		{"ETag differs", exportBody[:90], map[string]string{"ETag": etag(exportBody)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var whole atomic.Int32
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") != "" {
					for k, v := range tt.headers {
						w.Header().Set(k, v)
					}
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					return
				}
				whole.Add(1)
				w.Header().Set("Content-Length", strconv.Itoa(len(exportBody)))
				w.Write(exportBody)
			})
			f := partFile(t, tt.part)
			if err := c.Download(context.Background(), keeptrusts.Export{ID: "exp_1"}, f, keeptrusts.DownloadOptions{}); err != nil {
				t.Fatal(err)
			}
			fileIs(t, f, exportBody)
			if (whole.Load() > 0) != tt.again {
				t.Fatalf("%d whole downloads, want again=%v", whole.Load(), tt.again)
			}
		})
	}
}

// The contract caps Idempotency-Key at 255 characters; a workflow id has
// no bound. A longer key is shortened, the same way every time (a retried
// create must replay), and differently for keys that differ only at the end.
func TestCreateExportFitsLongIdempotencyKeys(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sent = append(sent, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"id":"exp_1","status":"queued"}`))
	})
	long := "ktpipe/" + strings.Repeat("w", 300) + "/run/g"
	for _, k := range []string{long + "0", long + "0", long + "1", "short"} {
		if _, _, err := c.CreateExport(context.Background(), keeptrusts.ExportRequest{Format: "ndjson"}, k); err != nil {
			t.Fatalf("create with a %d-byte key: %v", len(k), err)
		}
	}
	for _, k := range sent[:3] {
		if len(k) > 255 || !strings.HasPrefix(k, "ktpipe/www") {
			t.Fatalf("sent key %q (%d bytes)", k, len(k))
		}
	}
	if sent[0] != sent[1] || sent[0] == sent[2] || sent[3] != "short" {
		t.Fatalf("keys %q: want the same key twice, then another, then short unchanged", sent)
	}
}

// Hex is case-insensitive: an export whose sha256 a server sends in
// upper case is the same file, both for a whole download and for a
// partial file already complete (416).
func TestDownloadAcceptsUpperCaseSHA256(t *testing.T) {
	sum := sha256.Sum256(exportBody)
	upper := strings.ToUpper(hex.EncodeToString(sum[:]))
	for _, part := range [][]byte{nil, exportBody} {
		t.Run(strconv.Itoa(len(part))+" bytes already saved", func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") != "" {
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					return
				}
				w.Write(exportBody)
			})
			f := partFile(t, part)
			if err := c.Download(context.Background(), keeptrusts.Export{ID: "exp_1", SHA256: &upper}, f, keeptrusts.DownloadOptions{}); err != nil {
				t.Fatal(err)
			}
			fileIs(t, f, exportBody)
		})
	}
}
