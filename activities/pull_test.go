package activities

import (
	"net/http"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
)

// A server that answers has-more with the cursor it was sent must end the
// batch, not be asked for the same page until the batch is used up (and
// then again by every continued-as-new run).
func TestPullEndsBatchOnUnchangedCursor(t *testing.T) {
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
	v, err := env.ExecuteActivity(a.PullPages, payload.PullInput{LoadID: "L", Cursor: "c0", Pages: 50, PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	var res payload.PullResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if requests.Load() != 1 || res.HasMore || res.NextCursor != "c0" {
		t.Fatalf("%d requests, result %+v; want 1 request, HasMore false, cursor c0", requests.Load(), res)
	}
}
