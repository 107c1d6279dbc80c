package activities

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
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
	res, err := pullBatch(t, api)
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

// fixedWindow admits n requests a window, the window starting at its
// first request, and answers the others 429 with Retry-After (whole
// seconds) until the window ends. It counts the requests a client sent
// before a Retry-After it was given had passed, which the contract
// forbids, and the cursors of the pages it served.
type fixedWindow struct {
	n      int
	window time.Duration
	next   http.Handler

	mu        sync.Mutex
	start     time.Time
	count     int
	notBefore time.Time
	limited   int
	early     int
	served    []string // the cursor of every page served, "" for the first
}

func (f *fixedWindow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	now := time.Now()
	if now.Before(f.notBefore) {
		f.early++
	}
	if now.Sub(f.start) >= f.window {
		f.start, f.count = now, 0
	}
	if f.count++; f.count > f.n {
		secs := int((f.start.Add(f.window).Sub(now) + time.Second - 1) / time.Second)
		f.notBefore = now.Add(time.Duration(secs) * time.Second)
		f.limited++
		f.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	f.served = append(f.served, r.URL.Query().Get("cursor"))
	f.mu.Unlock()
	f.next.ServeHTTP(w, r)
}

// stagedIDs returns the event ids of a load's staged rows, in order.
func stagedIDs(t *testing.T, root string, man payload.Manifest) []string {
	t.Helper()
	var ids []string
	for _, c := range man.Chunks {
		f, err := os.Open(filepath.Join(root, c.Key))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var row struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: %v", c.Key, err)
			}
			ids = append(ids, row.EventID)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// A server whose rate limit (4 requests a window) is smaller than a
// batch (50 pages): a batch ends early with the pages it read rather
// than fail and lose them (which would fail at the same page on every
// retry), waits out Retry-After, and the next batch continues from the
// page not read. Together the batches read every page once and stage
// every event once, in order.
func TestPullProgressesUnderARateLimitSmallerThanABatch(t *testing.T) {
	cfg := ktsim.DefaultConfig()
	cfg.HistoryEvents, cfg.InvalidRate, cfg.Token = 95, 0, "token" // apiClient's token
	sim := ktsim.New(cfg)
	defer sim.Close()
	limiter := &fixedWindow{n: 4, window: time.Second, next: sim}
	api := apiClient(t, limiter)
	var gateways []string
	for _, g := range sim.Gateways() {
		gateways = append(gateways, g.ID)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	store := staging.Dir{Root: t.TempDir()}
	a := &Activities{API: api, Store: store, ChunkRows: 100}
	env.RegisterActivity(a)

	// As the workflow does: batch after batch from the cursor returned,
	// while it says there is more.
	var ids []string
	pages, batches := 0, 0
	in := payload.PullInput{Since: "30d", Pages: 50, PageSize: 10, Gateways: gateways}
	for more := true; more; batches++ {
		if batches == 10 {
			t.Fatal("no end after 10 batches")
		}
		in.LoadID = fmt.Sprint("L", batches)
		v, err := env.ExecuteActivity(a.PullPages, in)
		if err != nil {
			t.Fatalf("batch %d: %v", batches, err)
		}
		var res payload.PullResult
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, stagedIDs(t, store.Root, res.Manifest)...)
		pages += res.Pages
		in.Cursor, more = res.NextCursor, res.HasMore
	}

	var want []string
	for _, e := range sim.ValidEvents(time.Time{}, time.Time{}) {
		want = append(want, e.ID)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("staged %d events, want the source's %d, once each and in order", len(ids), len(want))
	}
	distinct := slices.Compact(slices.Sorted(slices.Values(limiter.served)))
	if pages != 10 || len(limiter.served) != 10 || len(distinct) != 10 {
		t.Errorf("%d pages in the results, %d served (%d distinct); want 10, each once", pages, len(limiter.served), len(distinct))
	}
	if limiter.limited == 0 || batches < 3 {
		t.Errorf("%d answers 429, %d batches; the limit did not bite", limiter.limited, batches)
	}
	if limiter.early != 0 {
		t.Errorf("%d requests sent before Retry-After had passed", limiter.early)
	}
}

// pullFailing runs PullPages from c0 against a server that serves pages
// c1, c2, ... (has-more) for its first ok requests and answers status
// after that; it returns the result, the requests made and the error.
func pullFailing(t *testing.T, ok int, status int, retryAfter string) (payload.PullResult, int32, error) {
	t.Helper()
	var requests atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(requests.Add(1))
		if n > ok {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(status)
			return
		}
		w.Header().Set("X-Next-Cursor", fmt.Sprint("c", n))
		w.Header().Set("X-Has-More", "true")
		w.Write([]byte("[]"))
	}))
	res, err := pullBatch(t, api)
	return res, requests.Load(), err
}

// A retryable failure past the first page (here a 503) ends the batch
// with the pages read: has-more, and the cursor of the page that failed.
func TestPullEndsTheBatchEarlyOnARetryableFailure(t *testing.T) {
	res, requests, err := pullFailing(t, 2, http.StatusServiceUnavailable, "")
	if err != nil {
		t.Fatal(err)
	}
	if requests != 3 || res.Pages != 2 || !res.HasMore || res.NextCursor != "c2" {
		t.Fatalf("%d requests, result %+v; want 3 requests, 2 pages, HasMore, cursor c2", requests, res)
	}
}

// A rate limit on the batch's first page fails the activity as before:
// there is nothing to keep, and Temporal's retry waits the Retry-After.
func TestPullFailsOnARateLimitedFirstPage(t *testing.T) {
	_, requests, err := pullFailing(t, 0, http.StatusTooManyRequests, "7")
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.NonRetryable() || ae.Type() != payload.ErrTypeRateLimited || ae.NextRetryDelay() != 7*time.Second {
		t.Fatalf("error %v; want a retryable %s waiting 7s", err, payload.ErrTypeRateLimited)
	}
	if requests != 1 {
		t.Fatalf("%d requests, want 1", requests)
	}
}

// pullBatch runs one PullPages of up to 50 pages from cursor c0 against
// api.
func pullBatch(t *testing.T, api *keeptrusts.Client) (payload.PullResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api, Store: staging.Dir{Root: t.TempDir()}, ChunkRows: 100}
	env.RegisterActivity(a)
	var res payload.PullResult
	v, err := env.ExecuteActivity(a.PullPages, payload.PullInput{LoadID: "L", Cursor: "c0", Pages: 50, PageSize: 10})
	if err == nil {
		err = v.Get(&res)
	}
	return res, err
}
