package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/staging"
)

// A process staging through a bucket sweeps its own scratch directory as
// it starts: an upload a dead process left two days ago goes, one of an
// hour ago stays.
func TestAProcessSweepsItsScratchAsItStarts(t *testing.T) {
	root := t.TempDir()
	old, recent := filepath.Join(root, ".upload-1"), filepath.Join(root, ".upload-2")
	for p, age := range map[string]time.Duration{old: 48 * time.Hour, recent: time.Hour} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		mod := time.Now().Add(-age)
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sweepScratch(ctx, staging.Bucket{Scratch: staging.Dir{Root: root}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(old); err == nil && time.Now().Before(deadline); _, err = os.Stat(old) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old upload is still there (%v)", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("the recent upload was removed: %v", err)
	}
}
