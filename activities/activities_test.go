package activities

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/api/googleapi"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		nonRetryable bool
		errType      string
		nextDelay    time.Duration
	}{
		{"429 waits Retry-After", &keeptrusts.APIError{Status: 429, RetryAfter: 7 * time.Second}, false, payload.ErrTypeRateLimited, 7 * time.Second},
		{"expired export", &keeptrusts.APIError{Status: 410, Code: "export_expired"}, true, payload.ErrTypeExpired, 0},
		{"expired cursor", &keeptrusts.APIError{Status: 410, Code: "cursor_expired"}, true, payload.ErrTypeCursorRejected, 0},
		{"invalid cursor", &keeptrusts.APIError{Status: 400, Code: "invalid_cursor"}, true, payload.ErrTypeCursorRejected, 0},
		{"400 is final", &keeptrusts.APIError{Status: 400, Code: "invalid_parameter"}, true, payload.ErrTypeAPI, 0},
		{"401 is final", &keeptrusts.APIError{Status: 401}, true, payload.ErrTypeAPI, 0},
		{"503 retries", &keeptrusts.APIError{Status: 503}, false, "", 0},
		{"schema", &warehouse.SchemaError{Table: "t", Column: "c", Problem: "p"}, true, payload.ErrTypeSchema, 0},
		{"dim_user past its bound", fmt.Errorf("read users: more than 5: %w", warehouse.ErrTooManyUsers), true, payload.ErrTypeBadInput, 0},
		{"dim_gateway past its bound", fmt.Errorf("refresh dim_gateway: %w: more than 5", warehouse.ErrTooManyFormerGateways), true, payload.ErrTypeBadInput, 0},
		{"malformed", &staging.MalformedError{Record: 3, Err: errors.New("x")}, true, payload.ErrTypeMalformed, 0},
		{"network", errors.New("connection reset"), false, "", 0},
		{"an untrusted server certificate is final", &url.Error{Op: "Get", URL: "https://api.example", Err: x509.UnknownAuthorityError{}}, true, payload.ErrTypeAPI, 0},
		{"checksum mismatch is final", fmt.Errorf("download: %w", &keeptrusts.ChecksumError{ExportID: "e"}), true, payload.ErrTypeChecksum, 0},
		{"bad query is final", fmt.Errorf("commit: %w", &googleapi.Error{Code: 400, Errors: []googleapi.ErrorItem{{Reason: "invalidQuery"}}}), true, payload.ErrTypeBigQuery, 0},
		{"access denied is final", &googleapi.Error{Code: 403, Errors: []googleapi.ErrorItem{{Reason: "accessDenied"}}}, true, payload.ErrTypeBigQuery, 0},
		{"missing table is final", &googleapi.Error{Code: 404}, true, payload.ErrTypeBigQuery, 0},
		{"BigQuery rate limit retries", &googleapi.Error{Code: 403, Errors: []googleapi.ErrorItem{{Reason: "rateLimitExceeded"}}}, false, "", 0},
		{"BigQuery quota retries", &googleapi.Error{Code: 403, Errors: []googleapi.ErrorItem{{Reason: "quotaExceeded"}}}, false, "", 0},
		{"BigQuery 500 retries", &googleapi.Error{Code: 500, Errors: []googleapi.ErrorItem{{Reason: "backendError"}}}, false, "", 0},
		{"BigQuery 503 retries", &googleapi.Error{Code: 503}, false, "", 0},
		{"a 400 for an upload that timed out retries", &googleapi.Error{Code: 400, Message: "failed to load metadata: multipart: NextPart: read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout",
			Errors: []googleapi.ErrorItem{{Reason: "invalid"}}}, false, "", 0},
		{"a 400 for a request body cut short retries", &googleapi.Error{Code: 400, Message: "failed to decode job: EOF", Errors: []googleapi.ErrorItem{{Reason: "invalid"}}}, false, "", 0},
		{"failed job, bad query", fmt.Errorf("job j: %w", &bigquery.Error{Reason: "invalidQuery", Message: "Unrecognized name: x"}), true, payload.ErrTypeBigQuery, 0},
		{"failed job, backend error", &bigquery.Error{Reason: "backendError"}, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("op", tt.err)
			var appErr *temporal.ApplicationError
			if tt.errType == "" {
				if errors.As(err, &appErr) {
					t.Fatalf("want a plain retryable error, got %v", err)
				}
				return
			}
			if !errors.As(err, &appErr) || appErr.Type() != tt.errType || appErr.NonRetryable() != tt.nonRetryable || appErr.NextRetryDelay() != tt.nextDelay {
				t.Fatalf("classify = %v (type %q, non-retryable %v, delay %v)", err, appErr.Type(), appErr.NonRetryable(), appErr.NextRetryDelay())
			}
		})
	}
}

func TestDownloadResumesFromStagedBytes(t *testing.T) {
	cfg := ktsim.DefaultConfig()
	cfg.HistoryEvents, cfg.ExportQueued, cfg.ExportRunning = 500, 10*time.Millisecond, 10*time.Millisecond
	sim := ktsim.New(cfg)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()
	api, _ := keeptrusts.New(srv.URL, cfg.Token)
	ctx := context.Background()
	exp, _, err := api.CreateExport(ctx, keeptrusts.ExportRequest{Format: "ndjson"}, "k")
	if err != nil {
		t.Fatal(err)
	}
	for !exp.Terminal() {
		time.Sleep(10 * time.Millisecond)
		if exp, err = api.GetExport(ctx, exp.ID); err != nil {
			t.Fatal(err)
		}
	}
	// What a worker killed mid-download left: the first 1000 bytes.
	store := staging.Dir{Root: t.TempDir()}
	full := filepath.Join(t.TempDir(), "full")
	f, _ := os.Create(full)
	if err := api.Download(ctx, exp, f, keeptrusts.DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(full)
	part, _, err := store.Append(ctx, ExportKey("L", exp.ID)+".part")
	if err != nil {
		t.Fatal(err)
	}
	part.Write(b[:1000])
	part.Close()

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api, Store: store}
	env.RegisterActivity(a)
	env.SetHeartbeatDetails(DownloadProgress{Bytes: 1000})
	v, err := env.ExecuteActivity(a.DownloadExport, payload.DownloadInput{LoadID: "L", Export: exp})
	if err != nil {
		t.Fatal(err)
	}
	var res payload.DownloadResult
	v.Get(&res)
	if res.ResumedAt != 1000 || res.Bytes != int64(len(b)) {
		t.Fatalf("result %+v, want resumed at 1000 of %d", res, len(b))
	}
	got, _ := os.ReadFile(filepath.Join(store.Root, res.Key))
	if string(got) != string(b) {
		t.Fatal("resumed file differs from the export")
	}
	// Done already: a repeat returns at once without the API.
	a.API = nil
	if _, err := env.ExecuteActivity(a.DownloadExport, payload.DownloadInput{LoadID: "L", Export: exp}); err != nil {
		t.Fatalf("repeat of a finished download: %v", err)
	}
}

// TestFetchGatewaysRefusesAnEmptyList: an empty list would quarantine
// every valid event as of an unknown gateway (and reconcile would count
// them as accounted for), so it fails the load without retrying.
func TestFetchGatewaysRefusesAnEmptyList(t *testing.T) {
	cfg := ktsim.DefaultConfig()
	cfg.HistoryEvents = 10
	sim := ktsim.New(cfg)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()
	api, _ := keeptrusts.New(srv.URL, cfg.Token)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api}
	env.RegisterActivity(a)

	// A stale list is still a list: it is served as it is.
	sim.SetFaults(ktsim.Faults{HiddenGateways: 1})
	v, err := env.ExecuteActivity(a.FetchGateways)
	if err != nil {
		t.Fatalf("stale list: %v", err)
	}
	var gws []payload.Gateway
	v.Get(&gws)
	if len(gws) != len(sim.Gateways())-1 {
		t.Fatalf("got %d gateways, want %d", len(gws), len(sim.Gateways())-1)
	}

	sim.SetFaults(ktsim.Faults{HiddenGateways: len(sim.Gateways())})
	_, err = env.ExecuteActivity(a.FetchGateways)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != payload.ErrTypeNoGateways || !appErr.NonRetryable() {
		t.Fatalf("empty list: %v, want a non-retryable %s", err, payload.ErrTypeNoGateways)
	}
}

// A BigQuery rejection is retried a little (the emulator answers 400 to
// races that heal), then final: bigQueryTries attempts, not the retry
// policy's many.
func TestBigQueryRejectionIsFinalAfterAFewAttempts(t *testing.T) {
	var calls int
	rejected := func(ctx context.Context) error {
		calls++
		return classifyWarehouse(ctx, "commit", &googleapi.Error{Code: 400, Errors: []googleapi.ErrorItem{{Reason: "invalidQuery"}}})
	}
	wf := func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 10}})
		return workflow.ExecuteActivity(ctx, "rejected").Get(ctx, nil)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(rejected, activity.RegisterOptions{Name: "rejected"})
	env.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: "wf"})
	env.ExecuteWorkflow("wf")
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != payload.ErrTypeBigQuery || calls != bigQueryTries {
		t.Fatalf("err %v after %d attempts, want %s after %d", err, calls, payload.ErrTypeBigQuery, bigQueryTries)
	}
}
