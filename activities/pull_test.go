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

// pullStuck runs PullPages from cursor c0 against a server whose cursor
// moves to the cursors in moves (one a page) and then stays where it
// is, always answering has-more; it returns the result, how many pages
// were asked for, and the activity's error.
func pullStuck(t *testing.T, moves ...string) (payload.PullResult, int32, error) {
	t.Helper()
	var requests atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(requests.Add(1))
		next := r.URL.Query().Get("cursor")
		if n <= len(moves) {
			next = moves[n-1]
		}
		w.Header().Set("X-Next-Cursor", next)
		w.Header().Set("X-Has-More", "true")
		w.Write([]byte("[]"))
	}))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api, Store: staging.Dir{Root: t.TempDir()}, ChunkRows: 100}
	env.RegisterActivity(a)
	var res payload.PullResult
	v, err := env.ExecuteActivity(a.PullPages, payload.PullInput{LoadID: "L", Cursor: "c0", Pages: 50, PageSize: 10})
	if err == nil {
		err = v.Get(&res)
	}
	return res, requests.Load(), err
}

// A server that answers has-more with the cursor it was sent breaks the
// contract: on a batch's first page the pull fails at once, loudly
// (KtpipeWorkflowFailed), rather than ask for the same page until the
// batch is used up, or end quietly and checkpoint a cursor that never
// moves.
func TestPullFailsOnAnUnchangedCursor(t *testing.T) {
	_, requests, err := pullStuck(t)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != payload.ErrTypeAPI || !strings.Contains(err.Error(), "has-more with the cursor it was sent") {
		t.Fatalf("error %v; want a non-retryable %s naming the unchanged cursor", err, payload.ErrTypeAPI)
	}
	if requests != 1 {
		t.Fatalf("%d requests, want 1", requests)
	}
}

// Past the batch's first page, a cursor that stops moving ends the batch
// with what it has (to be loaded, the checkpoint at the stuck cursor): the
// next run fails on its first page there.
func TestPullEndsTheBatchWhereTheCursorStops(t *testing.T) {
	res, requests, err := pullStuck(t, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if requests != 2 || res.HasMore || res.NextCursor != "c1" || res.Pages != 2 {
		t.Fatalf("%d requests, result %+v; want 2 requests, 2 pages, HasMore false, cursor c1", requests, res)
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
