package activities

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
)

// The newest event's bisection goes on from the bounds an attempt before
// heartbeated: an attempt that ran out of time is not repeated from the
// start. Bounds that do not fit the input are ignored.
func TestNewestSourceEventGoesOnFromItsHeartbeat(t *testing.T) {
	newest := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var calls atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		since, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("since"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n := 0
		if !since.After(newest) {
			n = 1
		}
		fmt.Fprintf(w, `{"count": %d}`, n)
	}))
	in := payload.NewestInput{After: newest.Add(-10 * time.Minute), Floor: newest.Add(-24 * time.Hour), Until: newest.Add(time.Minute)}
	for _, c := range []struct {
		name      string
		heartbeat any
		calls     int32
	}{
		{"from the start", nil, 11}, // After, then 11 minutes halved to a second: 10
		{"from a heartbeat", newestBounds{Lo: newest.Add(-2 * time.Second), Hi: newest.Add(2 * time.Second)}, 2},
		{"a heartbeat beyond the input", newestBounds{Lo: newest.Add(-2 * time.Second), Hi: newest.Add(time.Hour)}, 11},
	} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		a := &Activities{API: api}
		env.RegisterActivity(a)
		if c.heartbeat != nil {
			env.SetHeartbeatDetails(c.heartbeat)
		}
		calls.Store(0)
		v, err := env.ExecuteActivity(a.NewestSourceEvent, in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got time.Time
		if err := v.Get(&got); err != nil {
			t.Fatal(err)
		}
		if got.After(newest) || newest.Sub(got) > time.Second || calls.Load() != c.calls {
			t.Errorf("%s: newest %s in %d calls, want within a second before %s in %d", c.name, got, calls.Load(), newest, c.calls)
		}
	}
}
