// Package integration runs ktpipe's workflows end to end against the real
// parts: the Temporal dev server, the BigQuery emulator and the Keeptrusts
// simulator. Each test gets its own simulator, dataset, task queue and
// staging directory, so tests are independent and parallel-safe. They do
// not call t.Parallel: the emulator executes one query at a time, and
// concurrent tests only queue behind each other until they time out.
package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/api/iterator"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ktpipe/ktpipe/activities"
	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/chaos"
	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

const (
	project = "ktpipe-it"
	token   = "it-token"
)

var (
	temporalSrv *testsuite.DevServer
	seq         atomic.Int64
)

// TestMain starts one Temporal dev server for the package; each test
// starts its own emulator (a test that kills workers can leave the
// emulator busy with abandoned requests, which must not slow the next).
// A missing binary fails the run: CI must run these.
func TestMain(m *testing.M) {
	ctx := context.Background()
	var err error
	temporalSrv, err = devstack.StartTemporal(ctx, devstack.TemporalOptions{Logs: io.Discard, SearchAttributes: app.SearchAttributeTypes()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration tests need the Temporal dev server:", err)
		os.Exit(1)
	}
	if _, err := devstack.EmulatorBinary(); err != nil {
		temporalSrv.Stop()
		fmt.Fprintln(os.Stderr, "integration tests need the BigQuery emulator:", err)
		os.Exit(1)
	}
	code := m.Run()
	temporalSrv.Stop()
	os.Exit(code)
}

// stack is one test's pipeline: simulator, warehouse, workers.
type stack struct {
	t       *testing.T
	emu     *devstack.Emulator
	bq      *bigquery.Client
	sim     *ktsim.Server
	simURL  string
	wh      *warehouse.Warehouse
	acts    *activities.Activities
	tq      string
	dataset string
	staging string
	ctl     *control.Control
	workers app.Workers
	tuning  workflows.Tuning
	lastRun client.WorkflowRun // the last workflow run() started
}

func simConfig() ktsim.Config {
	cfg := ktsim.DefaultConfig()
	cfg.Token = token
	cfg.HistoryDays = 3
	cfg.HistoryEvents = 1200
	cfg.InvalidRate = 0.04
	cfg.LateRate = 0.1
	cfg.ExportQueued = 100 * time.Millisecond
	cfg.ExportRunning = 200 * time.Millisecond
	cfg.Seed = uint64(seq.Add(1))
	return cfg
}

// newStack starts a simulator and in-process workers (startWorkers=false
// leaves the workers to the test, e.g. as processes it can kill).
func newStack(t *testing.T, cfg ktsim.Config, startWorkers bool) *stack {
	t.Helper()
	ctx := context.Background()
	n := seq.Add(1)
	s := &stack{t: t, tq: fmt.Sprintf("it-%d-%d", n, time.Now().UnixNano()%1e6), dataset: fmt.Sprintf("it_%d", n), staging: t.TempDir()}
	s.sim = ktsim.New(cfg)
	srv := httptest.NewServer(s.sim)
	t.Cleanup(func() { srv.Close(); s.sim.Close() })
	s.simURL = srv.URL
	var err error
	if s.emu, err = devstack.StartEmulator(ctx, project, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.emu.Stop)
	if s.bq, err = s.emu.Client(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.bq.Close() })
	if s.wh, err = warehouse.New(s.bq, project, s.dataset, "US"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wh.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	api, err := keeptrusts.New(s.simURL, token, keeptrusts.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	prices, _ := warehouse.LoadPrices("")
	users := map[string]warehouse.UserInfo{}
	for _, u := range s.sim.Users() {
		users[u.Name] = warehouse.UserInfo{Team: u.Team, Department: u.Department}
	}
	s.acts = &activities.Activities{API: api, Warehouse: s.wh, Store: staging.Dir{Root: s.staging}, Prices: prices, Users: users, ChunkRows: 250}
	s.ctl = &control.Control{Client: temporalSrv.Client(), TaskQueue: s.tq, ScheduleID: "sched-" + s.tq}
	s.tuning = workflows.Tuning{PollInterval: 200 * time.Millisecond, MaxPollInterval: time.Second, HeartbeatTimeout: 3 * time.Second}
	if startWorkers {
		s.startWorkers()
	}
	return s
}

func (s *stack) startWorkers() {
	s.workers = app.NewWorkers(temporalSrv.Client(), s.tq, s.acts, 4, 50)
	if err := s.workers.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(s.workers.Stop)
}

// run starts a workflow and waits for its result.
func (s *stack) run(id string, wf any, in any, out any) error {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := temporalSrv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.tq}, wf, in)
	if err != nil {
		s.t.Fatal(err)
	}
	s.lastRun = run
	return run.Get(ctx, out)
}

// historyWindow is the whole simulated history.
func (s *stack) historyWindow() (time.Time, time.Time) {
	now := time.Now().UTC()
	return now.Add(-time.Duration(4*24) * time.Hour).Truncate(time.Hour), now.Add(time.Hour).Truncate(time.Hour)
}

// assertExactlyOnce proves the standard: every valid event of the window
// exactly once in the fact table, nothing else there, and every invalid
// one in quarantine.
func (s *stack) assertExactlyOnce(since, until time.Time) {
	s.t.Helper()
	defer func() {
		if s.t.Failed() {
			s.dumpCounts(s.t)
		}
	}()
	ctx := context.Background()
	truth := s.sim.Truth(since, until)
	fact, err := s.wh.FactIDs(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	q, err := s.wh.QuarantinedIDs(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, p := range chaos.Compare(truth, fact, q).Problems() {
		s.t.Error(p)
	}
	s.t.Logf("exactly once: %d valid events in fact, %d invalid in quarantine", len(truth.Valid), len(truth.Invalid))
}

// dumpCounts logs the ledger, raw and fact counts, to diagnose a failure.
func (s *stack) dumpCounts(t *testing.T) {
	ctx := context.Background()
	for _, sql := range []string{
		"SELECT load_id, chunk, `rows`, quarantined FROM `%[1]s.%[2]s.load_ledger` ORDER BY chunk",
		"SELECT load_id, COUNT(*) FROM `%[1]s.%[2]s.raw_events` GROUP BY load_id",
		"SELECT COUNT(*) FROM `%[1]s.%[2]s.fact_ai_event`",
	} {
		it, err := s.bq.Query(fmt.Sprintf(sql, project, s.dataset)).Read(ctx)
		if err != nil {
			t.Log(err)
			continue
		}
		for {
			var r []bigquery.Value
			if err := it.Next(&r); err == iterator.Done {
				break
			} else if err != nil {
				t.Log(err)
				break
			}
			t.Log(r)
		}
	}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// recordHistory saves a finished workflow's history for the replayer test
// in workflows/ (KTPIPE_RECORD_HISTORIES=1 go test ./integration).
func recordHistory(t *testing.T, workflowID, runID, name string) {
	t.Helper()
	if os.Getenv("KTPIPE_RECORD_HISTORIES") == "" {
		return
	}
	ctx := context.Background()
	it := temporalSrv.Client().GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: " "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "workflows", "testdata", "histories", name+".json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The replayer needs the original id: workflows derive child ids from it.
	if err := os.WriteFile(strings.TrimSuffix(path, ".json")+".id", []byte(workflowID+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events)", path, len(h.Events))
}
