package app_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/staging"
)

// The worker's store follows KTPIPE_STAGING_BUCKET, and the storage
// client honours STORAGE_EMULATOR_HOST, as a deployment's would.
func TestOpenStoreUsesTheBucketWhenConfigured(t *testing.T) {
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "staging-bucket"})
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(gcs.URL(), "http://"))
	ctx := context.Background()

	dirOnly, closeDir, err := app.OpenStore(ctx, config.Pipeline{StagingDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDir()
	if _, ok := dirOnly.(staging.Dir); !ok {
		t.Fatalf("without a bucket the store is %T, want staging.Dir", dirOnly)
	}

	store, closeStore, err := app.OpenStore(ctx, config.Pipeline{StagingDir: t.TempDir(), StagingBucket: "staging-bucket", StagingPrefix: "kt/"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	w, err := store.Create(ctx, "loads/x/chunk-00000.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "{}\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	obj, err := gcs.GetObject("staging-bucket", "kt/loads/x/chunk-00000.ndjson")
	if err != nil || string(obj.Content) != "{}\n" {
		t.Fatalf("object in the bucket: %q %v", obj.Content, err)
	}
}
