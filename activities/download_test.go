package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
)

// exportFile is an export's content and the Export the API reports.
func exportFile(t *testing.T, n int) ([]byte, payload.Export) {
	t.Helper()
	body := bytes.Repeat([]byte("0123456789abcdef"), n/16)
	sum := sha256.Sum256(body)
	size, sha := int64(len(body)), hex.EncodeToString(sum[:])
	return body, payload.Export{ID: "exp_1", Status: payload.StatusCompleted, Format: "ndjson", SizeBytes: &size, SHA256: &sha}
}

// serveRange answers a download request from body, honouring Range.
func serveRange(w http.ResponseWriter, r *http.Request, body []byte) {
	var from int
	if rg := r.Header.Get("Range"); rg != "" {
		from, _ = strconv.Atoi(rg[len("bytes=") : len(rg)-1])
		w.Header().Set("Content-Range", "bytes "+strconv.Itoa(from)+"-"+strconv.Itoa(len(body)-1)+"/"+strconv.Itoa(len(body)))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)-from))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.Write(body[from:])
}

func apiClient(t *testing.T, h http.Handler) *keeptrusts.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	api, err := keeptrusts.New(srv.URL, "token")
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// downloadWorkflow runs DownloadExport once, with a short heartbeat
// timeout, as a workflow would.
func downloadWorkflow(ctx workflow.Context, in payload.DownloadInput) (payload.DownloadResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, HeartbeatTimeout: 300 * time.Millisecond,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var a *Activities
	var res payload.DownloadResult
	err := workflow.ExecuteActivity(ctx, a.DownloadExport, in).Get(ctx, &res)
	return res, err
}

// A download that waits out a Retry-After longer than its heartbeat
// timeout must keep heartbeating, or the server retries it beside the
// waiting attempt.
func TestDownloadHeartbeatsWhileWaitingOutRetryAfter(t *testing.T) {
	body, exp := exportFile(t, 4096)
	var requests atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		serveRange(w, r, body)
	}))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	a := &Activities{API: api, Store: staging.Dir{Root: t.TempDir()}}
	env.RegisterActivity(a)
	env.RegisterWorkflow(downloadWorkflow)
	env.ExecuteWorkflow(downloadWorkflow, payload.DownloadInput{LoadID: "L", Export: exp})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("download with a 2s Retry-After and a 300ms heartbeat timeout: %v", err)
	}
	if requests.Load() != 2 {
		t.Fatalf("%d requests, want 2", requests.Load())
	}
}

// Two attempts of the same download at once (the server gave up on the
// first, which has not noticed yet) must never both append to the
// partial file: the second waits for the first, then finds the file done.
func TestConcurrentDownloadAttemptsDoNotInterleave(t *testing.T) {
	body, exp := exportFile(t, 1<<20)
	half := len(body) / 2
	firstHalfSent, release := make(chan struct{}), make(chan struct{})
	var requests atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			serveRange(w, r, body)
			return
		}
		// The first attempt's connection stalls halfway.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		close(firstHalfSent)
		<-release
		w.Write(body[half:])
	}))
	store := staging.Dir{Root: t.TempDir()}
	a := &Activities{API: api, Store: store}
	in := payload.DownloadInput{LoadID: "L", Export: exp}
	part := filepath.Join(store.Root, ExportKey("L", exp.ID)+".part")

	attempt := func(name string, done chan<- error) {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		_, err := env.ExecuteActivity(a.DownloadExport, in)
		if err != nil {
			err = errors.New(name + ": " + err.Error())
		}
		done <- err
	}
	first, second := make(chan error, 1), make(chan error, 1)
	go attempt("first", first)
	<-firstHalfSent
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, err := os.Stat(part); err == nil && st.Size() == int64(half) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first attempt never wrote its first half")
		}
	}
	go attempt("second", second)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	var errs []error
	select {
	case err := <-second: // without a fence it finishes beside the first
		errs = append(errs, err)
		unblock()
		errs = append(errs, <-first)
	case <-time.After(500 * time.Millisecond):
		unblock()
		errs = append(errs, <-first, <-second)
	}
	got, err := os.ReadFile(filepath.Join(store.Root, ExportKey("L", exp.ID)))
	if err != nil {
		t.Fatalf("%v (attempts: %v)", err, errs)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("staged file has %d bytes, the export %d: two attempts wrote into it (attempts: %v)", len(got), len(body), errs)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A file that fails its checksum is downloaded once more whole; a second
// mismatch is final, with its own error type, instead of downloading the
// export forever.
func TestChecksumMismatchIsFinalAfterOneRedownload(t *testing.T) {
	body, exp := exportFile(t, 4096)
	wrong := hex.EncodeToString(make([]byte, 32))
	exp.SHA256 = &wrong
	var requests atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		serveRange(w, r, body)
	}))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api, Store: staging.Dir{Root: t.TempDir()}}
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.DownloadExport, payload.DownloadInput{LoadID: "L", Export: exp})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != payload.ErrTypeChecksum || !appErr.NonRetryable() {
		t.Fatalf("err %v, want a non-retryable %s", err, payload.ErrTypeChecksum)
	}
	if requests.Load() != 2 {
		t.Fatalf("%d downloads, want 2 (one whole re-download)", requests.Load())
	}
}

// A file under the export's final key that is not the export's size (a
// host that crashed before its bytes reached the disk) is not taken as
// done: it is downloaded again.
func TestAStagedExportOfTheWrongSizeIsDownloadedAgain(t *testing.T) {
	body, exp := exportFile(t, 4096)
	var requests atomic.Int32
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		serveRange(w, r, body)
	}))
	store := staging.Dir{Root: t.TempDir()}
	key := ExportKey("L", exp.ID)
	wc, err := store.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	wc.Write(body[:100])
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api, Store: store}
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.DownloadExport, payload.DownloadInput{LoadID: "L", Export: exp})
	if err != nil {
		t.Fatal(err)
	}
	var res payload.DownloadResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if n, err := store.Size(context.Background(), key); err != nil || n != int64(len(body)) || res.Bytes != int64(len(body)) || requests.Load() != 1 {
		t.Fatalf("staged %d bytes (%v), result %d, %d downloads; want %d, one download", n, err, res.Bytes, requests.Load(), len(body))
	}
}

// slowStore takes its time removing, as a bucket does with many keys.
type slowStore struct {
	staging.Store
	delay time.Duration
}

func (s slowStore) RemoveAll(ctx context.Context, key string) error {
	time.Sleep(s.delay)
	return s.Store.RemoveAll(ctx, key)
}

func removeWorkflow(ctx workflow.Context, keys []string) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, HeartbeatTimeout: 300 * time.Millisecond,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var a *Activities
	return workflow.ExecuteActivity(ctx, a.RemoveStaged, keys).Get(ctx, nil)
}

// Removing many staged keys slowly must heartbeat, or a healthy clean-up
// looks like a dead worker and is retried beside itself.
func TestRemoveStagedHeartbeatsWhileItWorks(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	a := &Activities{Store: slowStore{Store: staging.Dir{Root: t.TempDir()}, delay: 400 * time.Millisecond}}
	env.RegisterActivity(a)
	env.RegisterWorkflow(removeWorkflow)
	env.ExecuteWorkflow(removeWorkflow, []string{"a", "b", "c"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("removing 3 keys at 400ms each with a 300ms heartbeat timeout: %v", err)
	}
}
