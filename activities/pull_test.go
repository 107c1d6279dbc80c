package activities

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
)

// A server that answers has-more with the cursor it was sent breaks the
// contract: the pull fails at once, loudly (KtpipeWorkflowFailed), rather
// than ask for the same page until the batch is used up, or end quietly
// and checkpoint a cursor that never moves.
func TestPullFailsOnAnUnchangedCursor(t *testing.T) {
	var requests atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("X-Next-Cursor", r.URL.Query().Get("cursor"))
		w.Header().Set("X-Has-More", "true")
		w.Write([]byte("[]"))
	}))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api, Store: staging.Dir{Root: t.TempDir()}, ChunkRows: 100}
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.PullPages, payload.PullInput{LoadID: "L", Cursor: "c0", Pages: 50, PageSize: 10})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != payload.ErrTypeAPI || !strings.Contains(err.Error(), "has-more with the cursor it was sent") {
		t.Fatalf("error %v; want a non-retryable %s naming the unchanged cursor", err, payload.ErrTypeAPI)
	}
	if requests.Load() != 1 {
		t.Fatalf("%d requests, want 1", requests.Load())
	}
}

// Past the batch's first page, a cursor that stops moving ends the batch
// with what it has (to be loaded, the checkpoint at the stuck cursor): the
// next run fails on its first page there.
func TestPullEndsTheBatchWhereTheCursorStops(t *testing.T) {
	var requests atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		next := "c1" // moves once, then sticks
		w.Header().Set("X-Next-Cursor", next)
		w.Header().Set("X-Has-More", "true")
		w.Write([]byte("[]"))
	}))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api, Store: staging.Dir{Root: t.TempDir()}, ChunkRows: 100}
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.PullPages, payload.PullInput{LoadID: "L", Cursor: "c0", Pages: 50, PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	var res payload.PullResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if requests.Load() != 2 || res.HasMore || res.NextCursor != "c1" || res.Pages != 2 {
		t.Fatalf("%d requests, result %+v; want 2 requests, 2 pages, HasMore false, cursor c1", requests.Load(), res)
	}
}

// A load id or key that cannot name a staged file is refused at once
// (BadInput): every retry would be refused the same way.
func TestBadStagingKeysFailAtOnce(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{Store: staging.Dir{Root: t.TempDir()}}
	env.RegisterActivity(a)
	for _, run := range []func() error{
		func() error { _, err := env.ExecuteActivity(a.ReadManifest, "../etc"); return err },
		func() error { _, err := env.ExecuteActivity(a.CleanupLoad, "x..y"); return err },
		func() error { _, err := env.ExecuteActivity(a.RemoveStaged, []string{"webhooks/../x"}); return err },
	} {
		var ae *temporal.ApplicationError
		if err := run(); !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != payload.ErrTypeBadInput {
			t.Errorf("error %v; want a non-retryable %s", err, payload.ErrTypeBadInput)
		}
	}
}
