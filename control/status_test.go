package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/warehouse"
	"github.com/ktpipe/ktpipe/workflows"
)

var statusNow = time.Date(2026, 11, 29, 15, 0, 0, 0, time.UTC)

type fakeTemporal struct {
	sched     *client.ScheduleDescription
	schedErr  error
	pollers   int
	running   []WorkflowSummary
	failed    []WorkflowSummary
	reconcile *ReconcileStatus
	listErr   error
	// The compaction's schedule (asked only with CompactEvery set).
	compact    *client.ScheduleDescription
	compactErr error
}

func (f *fakeTemporal) DescribeSchedule(context.Context) (*client.ScheduleDescription, error) {
	return f.sched, f.schedErr
}
func (f *fakeTemporal) DescribeCompactSchedule(context.Context) (*client.ScheduleDescription, error) {
	if f.compact == nil && f.compactErr == nil {
		return nil, errors.New("status asked for the compaction's schedule with KTPIPE_COMPACT_EVERY 0")
	}
	return f.compact, f.compactErr
}
func (f *fakeTemporal) RecentWorkflows(_ context.Context, status string, closedAfter time.Time, _ int) ([]WorkflowSummary, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	if status == "Running" {
		return f.running, nil
	}
	if closedAfter.IsZero() {
		return nil, errors.New("failed workflows must be bounded to the last 24 h")
	}
	return f.failed, nil
}
func (f *fakeTemporal) WorkerPollers(context.Context) (int, error) { return f.pollers, nil }
func (f *fakeTemporal) LastReconcile(context.Context) (*ReconcileStatus, error) {
	return f.reconcile, nil
}

type fakeWarehouse struct {
	cursor   string
	written  time.Time
	audits   []warehouse.AuditRow
	auditErr error
	quar     []warehouse.ViolationCount
}

func (f *fakeWarehouse) Checkpoint(context.Context, string) (string, error) { return f.cursor, nil }
func (f *fakeWarehouse) CheckpointTime(context.Context, string) (time.Time, error) {
	return f.written, nil
}
func (f *fakeWarehouse) AuditHistory(_ context.Context, since time.Time, _ int) ([]warehouse.AuditRow, error) {
	var out []warehouse.AuditRow
	for _, a := range f.audits {
		if !a.AuditedAt.Before(since) {
			out = append(out, a)
		}
	}
	return out, f.auditErr
}
func (f *fakeWarehouse) QuarantineSince(context.Context, time.Time) ([]warehouse.ViolationCount, error) {
	return f.quar, nil
}

// healthy is a pipeline where nothing is wrong.
func healthy() (*fakeTemporal, *fakeWarehouse) {
	next := statusNow.Add(40 * time.Minute)
	t := &fakeTemporal{pollers: 2,
		sched: &client.ScheduleDescription{
			Schedule: client.Schedule{State: &client.ScheduleState{},
				Spec: &client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Hour}}}},
			Info: client.ScheduleInfo{NextActionTimes: []time.Time{next}}},
		running:   []WorkflowSummary{{ID: "ktpipe-incremental-pull-x", RunID: "r1", Type: "IncrementalPull", Start: statusNow.Add(-time.Minute)}},
		reconcile: &ReconcileStatus{WorkflowID: "ktpipe-reconcile-a", RunID: "r2", ClosedAt: statusNow.Add(-3 * time.Hour), Source: 1000, Warehouse: 1000, Ratio: 1},
	}
	lag := 42.0
	w := &fakeWarehouse{cursor: "c-1", written: statusNow.Add(-20 * time.Minute),
		audits: []warehouse.AuditRow{{AuditedAt: statusNow.Add(-2 * time.Minute), IngestionLagSeconds: lag, LagKnown: true,
			APINewest: statusNow.Add(-time.Minute), WarehouseNewest: statusNow.Add(-time.Minute - 42*time.Second),
			FactRows: 5000, CompletenessRatio: 1, APICount: 300, WarehouseCount: 300}},
		quar: []warehouse.ViolationCount{{Field: "gateway_id", Rule: "must be a known gateway", Records: 3}}}
	return t, w
}

func opts(t StatusTemporal, w StatusWarehouse) StatusOptions {
	o := StatusOptions{ScheduleID: "ktpipe-incremental-pull", CompactScheduleID: "ktpipe-compaction", TaskQueue: "ktpipe", Namespace: "default",
		UIURL: "http://127.0.0.1:8233", Interval: time.Hour, Now: statusNow}
	if t != nil {
		o.Temporal = t
	}
	if w != nil {
		o.Warehouse = w
	}
	return o
}

func TestStatusHealthyExitsZero(t *testing.T) {
	ft, fw := healthy()
	var out bytes.Buffer
	if code := Status(context.Background(), opts(ft, fw), &out); code != StatusHealthy {
		t.Fatalf("exit %d, want 0:\n%s", code, out.String())
	}
	for _, want := range []string{"ktpipe status: OK", "active, every 1h0m0s, next run 2026-11-29T15:40:00Z (in 40m0s)", "2 polling",
		"42s (API newest", "100.000 %", "gateway_id: must be a known gateway ×3",
		"http://127.0.0.1:8233/namespaces/default/workflows/ktpipe-incremental-pull-x/r1/history"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "ALERTS") || strings.Contains(out.String(), "counted") {
		t.Errorf("healthy status lists alerts, or counts as carried:\n%s", out.String())
	}
	// An audit that carried its counts says how old they are.
	fw.audits[0].CountedAt = statusNow.Add(-30 * time.Minute)
	out.Reset()
	Status(context.Background(), opts(ft, fw), &out)
	if !strings.Contains(out.String(), "of fact rows (counted 30m0s ago: nothing committed since)") {
		t.Errorf("carried counts not said:\n%s", out.String())
	}
}

// TestStatusAlertsExitOne: each of the guide's conditions (and the
// issue's additions), alone, names itself and exits 1.
func TestStatusAlertsExitOne(t *testing.T) {
	cases := []struct {
		alert  string
		break_ func(*fakeTemporal, *fakeWarehouse)
	}{
		{"KtpipeIngestionLag", func(_ *fakeTemporal, w *fakeWarehouse) { w.audits[0].IngestionLagSeconds = 301 }},
		{"KtpipeSchemaViolations", func(_ *fakeTemporal, w *fakeWarehouse) { w.audits[0].SchemaViolations = 1 }},
		{"KtpipeDuplicateEvents", func(_ *fakeTemporal, w *fakeWarehouse) { w.audits[0].FactDuplicateRatio = 0.0011 }},
		{"KtpipeCompletenessLow", func(_ *fakeTemporal, w *fakeWarehouse) { w.audits[0].CompletenessRatio = 0.998 }},
		{"KtpipeReconcileIncomplete", func(f *fakeTemporal, _ *fakeWarehouse) { f.reconcile.Ratio = 0.99 }},
		{"KtpipePullStalled", func(_ *fakeTemporal, w *fakeWarehouse) { w.written = statusNow.Add(-2*time.Hour - 11*time.Minute) }},
		{"KtpipeWorkerDown", func(f *fakeTemporal, _ *fakeWarehouse) { f.pollers = 0 }},
		{"KtpipeScheduleMissing", func(f *fakeTemporal, _ *fakeWarehouse) { f.sched, f.schedErr = nil, ErrNoSchedule }},
		{"KtpipeWorkflowFailed", func(f *fakeTemporal, _ *fakeWarehouse) {
			f.failed = []WorkflowSummary{{ID: "ktpipe-replay-x", RunID: "r", Type: "Replay", Start: statusNow.Add(-time.Hour), Close: statusNow}}
		}},
		{"KtpipeExportFailed", func(f *fakeTemporal, _ *fakeWarehouse) {
			f.failed = []WorkflowSummary{{ID: "ktpipe-export-x", RunID: "r", Type: "ExportLoad", Start: statusNow.Add(-time.Hour), Close: statusNow}}
		}},
		{"KtpipeAuditStale", func(_ *fakeTemporal, w *fakeWarehouse) { w.audits[0].AuditedAt = statusNow.Add(-16 * time.Minute) }},
	}
	for _, c := range cases {
		t.Run(c.alert, func(t *testing.T) {
			ft, fw := healthy()
			c.break_(ft, fw)
			var out bytes.Buffer
			code := Status(context.Background(), opts(ft, fw), &out)
			if code != StatusAlert || !strings.Contains(out.String(), c.alert+":") {
				t.Fatalf("exit %d, want 1 naming %s:\n%s", code, c.alert, out.String())
			}
		})
	}
	// At the thresholds themselves nothing fires: the guide's "> 5 min",
	// "> 0.1 %", "< 99.9 %".
	ft, fw := healthy()
	fw.audits[0].IngestionLagSeconds, fw.audits[0].FactDuplicateRatio, fw.audits[0].CompletenessRatio = 300, 0.001, 0.999
	fw.written = statusNow.Add(-2*time.Hour - 10*time.Minute)
	fw.audits[0].AuditedAt = statusNow.Add(-15 * time.Minute)
	var out bytes.Buffer
	if code := Status(context.Background(), opts(ft, fw), &out); code != StatusHealthy {
		t.Fatalf("at the thresholds: exit %d, want 0:\n%s", code, out.String())
	}
}

// Status raises the rules' conditions on the rules' windows: a workflow
// or export failed in the last hour (older failures of the last 24 h are
// listed, not alerted on), and no audit row for 3 audit intervals, 15
// minutes at least (what KtpipeAuditStale waits).
func TestStatusUsesTheRulesWindows(t *testing.T) {
	cases := []struct {
		name  string
		set   func(*StatusOptions, *fakeTemporal, *fakeWarehouse)
		alert string // "" healthy
	}{
		{"export failed 20 h ago", func(_ *StatusOptions, f *fakeTemporal, _ *fakeWarehouse) {
			f.failed = []WorkflowSummary{{ID: "ktpipe-export-x", RunID: "r", Type: "ExportLoad", Start: statusNow.Add(-21 * time.Hour), Close: statusNow.Add(-20 * time.Hour)}}
		}, ""},
		{"export failed 61 min ago", func(_ *StatusOptions, f *fakeTemporal, _ *fakeWarehouse) {
			f.failed = []WorkflowSummary{{ID: "ktpipe-export-x", RunID: "r", Type: "ExportLoad", Start: statusNow.Add(-2 * time.Hour), Close: statusNow.Add(-61 * time.Minute)}}
		}, ""},
		{"export failed 59 min ago, another 20 h ago", func(_ *StatusOptions, f *fakeTemporal, _ *fakeWarehouse) {
			f.failed = []WorkflowSummary{
				{ID: "ktpipe-export-y", RunID: "r", Type: "ExportLoad", Start: statusNow.Add(-2 * time.Hour), Close: statusNow.Add(-59 * time.Minute)},
				{ID: "ktpipe-export-x", RunID: "r", Type: "ExportLoad", Start: statusNow.Add(-21 * time.Hour), Close: statusNow.Add(-20 * time.Hour)}}
		}, "KtpipeExportFailed: 1 export load failed in the last hour"},
		{"audit 20 min old, 5-minute audits", func(_ *StatusOptions, _ *fakeTemporal, w *fakeWarehouse) {
			w.audits[0].AuditedAt = statusNow.Add(-20 * time.Minute)
		}, "KtpipeAuditStale: newest audit 20m0s ago, more than 15m0s"},
		{"no audit at all", func(_ *StatusOptions, _ *fakeTemporal, w *fakeWarehouse) { w.audits = nil }, "KtpipeAuditStale: no audit in the last 1h0m0s"},
		{"hourly audits, the newest 3 h old", func(o *StatusOptions, _ *fakeTemporal, w *fakeWarehouse) {
			o.AuditInterval = time.Hour
			w.audits[0].AuditedAt = statusNow.Add(-3 * time.Hour)
		}, ""},
		{"hourly audits, the newest 3 h 1 min old", func(o *StatusOptions, _ *fakeTemporal, w *fakeWarehouse) {
			o.AuditInterval = time.Hour
			w.audits[0].AuditedAt = statusNow.Add(-3*time.Hour - time.Minute)
		}, "KtpipeAuditStale: no audit in the last 3h0m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ft, fw := healthy()
			o := opts(ft, fw)
			c.set(&o, ft, fw)
			var out bytes.Buffer
			code := Status(context.Background(), o, &out)
			if c.alert == "" {
				if code != StatusHealthy || strings.Contains(out.String(), "ALERTS") {
					t.Fatalf("exit %d, want 0:\n%s", code, out.String())
				}
				if len(ft.failed) > 0 && !strings.Contains(out.String(), "failed in 24 h: 1") {
					t.Errorf("the failure is not listed:\n%s", out.String())
				}
				return
			}
			if code != StatusAlert || !strings.Contains(out.String(), c.alert) {
				t.Fatalf("exit %d, want 1 with %q:\n%s", code, c.alert, out.String())
			}
		})
	}
}

func TestStatusCannotTellExitsTwo(t *testing.T) {
	cases := map[string]func(*StatusOptions, *fakeTemporal, *fakeWarehouse){
		"bigquery not configured": func(o *StatusOptions, _ *fakeTemporal, _ *fakeWarehouse) {
			o.Warehouse, o.WarehouseErr = nil, errors.New("BIGQUERY_PROJECT: missing required value")
		},
		"temporal unreachable": func(o *StatusOptions, _ *fakeTemporal, _ *fakeWarehouse) {
			o.Temporal, o.TemporalErr = nil, errors.New("dial 127.0.0.1:7233: connection refused")
		},
		"audit table unreadable": func(_ *StatusOptions, _ *fakeTemporal, w *fakeWarehouse) {
			w.audits, w.auditErr = nil, errors.New("404 audit not found")
		},
		"no checkpoint yet": func(_ *StatusOptions, _ *fakeTemporal, w *fakeWarehouse) { w.written = time.Time{} },
		"workflow list fails": func(_ *StatusOptions, f *fakeTemporal, _ *fakeWarehouse) {
			f.listErr = errors.New("visibility unavailable")
		},
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			ft, fw := healthy()
			o := opts(ft, fw)
			breakIt(&o, ft, fw)
			var out bytes.Buffer
			if code := Status(context.Background(), o, &out); code != StatusUnknown || !strings.Contains(out.String(), "COULD NOT READ") {
				t.Fatalf("exit %d, want 2:\n%s", code, out.String())
			}
		})
	}
	// An alert that holds still wins: something is wrong either way.
	ft, fw := healthy()
	ft.pollers = 0
	o := opts(ft, fw)
	o.Warehouse = nil
	if code := Status(context.Background(), o, &bytes.Buffer{}); code != StatusAlert {
		t.Fatalf("alert and unknown: exit %d, want 1", code)
	}
}

// With KTPIPE_COMPACT_EVERY set, loads wait for the compaction: status
// fails when its schedule is missing or paused, or has started no run in
// two intervals and the grace; at the bound it holds nothing. Without
// it, status does not look.
func TestStatusChecksTheCompactionWhenLoadsWait(t *testing.T) {
	compaction := func(created time.Time, started ...time.Time) *client.ScheduleDescription {
		d := &client.ScheduleDescription{
			Schedule: client.Schedule{State: &client.ScheduleState{},
				Spec: &client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Hour}}}},
			Info: client.ScheduleInfo{CreatedAt: created, NextActionTimes: []time.Time{statusNow.Add(20 * time.Minute)}}}
		for _, at := range started {
			d.Info.RecentActions = append(d.Info.RecentActions, client.ScheduleActionResult{ScheduleTime: at, ActualTime: at})
		}
		return d
	}
	bound := 2*time.Hour + CompactionGrace
	cases := []struct {
		name  string
		set   func(*fakeTemporal)
		alert string // "" healthy; else the alert, and what its detail must say
	}{
		{"ran 40 min ago", func(f *fakeTemporal) {
			f.compact = compaction(statusNow.Add(-48*time.Hour), statusNow.Add(-100*time.Minute), statusNow.Add(-40*time.Minute))
		}, ""},
		{"ran at the bound", func(f *fakeTemporal) { f.compact = compaction(statusNow.Add(-48*time.Hour), statusNow.Add(-bound)) }, ""},
		{"ran past the bound", func(f *fakeTemporal) {
			f.compact = compaction(statusNow.Add(-48*time.Hour), statusNow.Add(-3*time.Hour), statusNow.Add(-bound-time.Minute))
		}, "KtpipeCompactionBehind"},
		{"created 1 h ago, no run yet", func(f *fakeTemporal) { f.compact = compaction(statusNow.Add(-time.Hour)) }, ""},
		{"created 3 h ago, never ran", func(f *fakeTemporal) { f.compact = compaction(statusNow.Add(-3 * time.Hour)) }, "KtpipeCompactionBehind"},
		{"changed 1 h ago, last ran 3 h ago", func(f *fakeTemporal) {
			f.compact = compaction(statusNow.Add(-48*time.Hour), statusNow.Add(-3*time.Hour))
			f.compact.Info.LastUpdateAt = statusNow.Add(-time.Hour)
		}, ""},
		{"a run going for 3 h", func(f *fakeTemporal) {
			f.compact = compaction(statusNow.Add(-48*time.Hour), statusNow.Add(-3*time.Hour))
			f.compact.Info.RunningWorkflows = []client.ScheduleWorkflowExecution{{WorkflowID: "ktpipe-compaction-workflow-x"}}
		}, "KtpipeCompactionBehind: schedule ktpipe-compaction last started a run 3h0m0s ago, more than 2 × 1h0m0s + 15m0s; a run is still going: ktpipe-compaction-workflow-x"},
		{"paused", func(f *fakeTemporal) {
			f.compact = compaction(statusNow.Add(-48*time.Hour), statusNow.Add(-10*time.Minute))
			f.compact.Schedule.State.Paused = true
		}, "KtpipeCompactionBehind"},
		{"missing", func(f *fakeTemporal) { f.compactErr = ErrNoSchedule }, "KtpipeScheduleMissing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ft, fw := healthy()
			c.set(ft)
			o := opts(ft, fw)
			o.CompactEvery = time.Hour
			var out bytes.Buffer
			code := Status(context.Background(), o, &out)
			if c.alert == "" {
				if code != StatusHealthy || !strings.Contains(out.String(), "ktpipe-compaction: active, every 1h0m0s, next run") {
					t.Fatalf("exit %d, want 0 with the compaction's line:\n%s", code, out.String())
				}
				return
			}
			if code != StatusAlert || !strings.Contains(out.String(), c.alert) || !strings.Contains(out.String(), "ktpipe-compaction") {
				t.Fatalf("exit %d, want 1 naming %s and the schedule:\n%s", code, c.alert, out.String())
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		ft, fw := healthy()
		ft.compactErr = errors.New("deadline exceeded")
		o := opts(ft, fw)
		o.CompactEvery = time.Hour
		var out bytes.Buffer
		if code := Status(context.Background(), o, &out); code != StatusUnknown || !strings.Contains(out.String(), "compaction schedule: deadline exceeded") {
			t.Fatalf("exit %d, want 2:\n%s", code, out.String())
		}
	})
	t.Run("compaction off", func(t *testing.T) {
		ft, fw := healthy() // the fake fails if asked for the compaction's schedule
		var out bytes.Buffer
		if code := Status(context.Background(), opts(ft, fw), &out); code != StatusHealthy || strings.Contains(out.String(), "compaction") {
			t.Fatalf("exit %d, want 0 and no compaction line:\n%s", code, out.String())
		}
	})
}

func TestStatusPausedScheduleHasNoNextRun(t *testing.T) {
	ft, fw := healthy()
	ft.sched.Schedule.State = &client.ScheduleState{Paused: true, Note: "maintenance"}
	var out bytes.Buffer
	Status(context.Background(), opts(ft, fw), &out)
	if !strings.Contains(out.String(), "paused") || strings.Contains(out.String(), "next run") {
		t.Fatalf("paused schedule shows a next run:\n%s", out.String())
	}
	o := opts(ft, fw)
	o.JSON = true
	out.Reset()
	Status(context.Background(), o, &out)
	var r StatusReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Schedule.State != "paused" || r.Schedule.NextRun != nil {
		t.Fatalf("json schedule %+v", r.Schedule)
	}
}

func TestStatusJSON(t *testing.T) {
	ft, fw := healthy()
	ft.failed = []WorkflowSummary{{ID: "ktpipe-export-x", RunID: "r9", Type: "ExportLoad", Start: statusNow.Add(-time.Hour), Close: statusNow}}
	o := opts(ft, fw)
	o.JSON = true
	var out bytes.Buffer
	code := Status(context.Background(), o, &out)
	var r StatusReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if code != 1 || r.ExitCode != 1 || r.Health != "alert" || len(r.Alerts) != 2 ||
		r.Failed[0].URL != "http://127.0.0.1:8233/namespaces/default/workflows/ktpipe-export-x/r9/history" ||
		*r.Audit.LagSeconds != 42 || r.Quarantine24h.Records != 3 || r.Schedule.NextRun == nil {
		t.Fatalf("exit %d, report %s", code, out.String())
	}
}

func TestTemporalUIURL(t *testing.T) {
	for _, c := range []struct{ explicit, addr, want string }{
		{"", "127.0.0.1:7233", "http://127.0.0.1:8233"},
		{"", ":7233", "http://127.0.0.1:8233"},
		{"", "temporal:7233", "http://temporal:8233"},
		{"", "ns.acct.tmprl.cloud:7233", "https://cloud.temporal.io"},
		{"http://ui.example:8080/", "x:7233", "http://ui.example:8080"},
	} {
		if got := TemporalUIURL(c.explicit, c.addr); got != c.want {
			t.Errorf("TemporalUIURL(%q, %q) = %q, want %q", c.explicit, c.addr, got, c.want)
		}
	}
}

// TestStatusCLINothingReachableExitsTwo: the command itself, with
// Temporal down and BigQuery not configured, says it cannot tell (today
// it exited 0).
func TestStatusCLINothingReachableExitsTwo(t *testing.T) {
	var out, errOut bytes.Buffer
	c := &CLI{Stdout: &out, Stderr: &errOut, Env: envconfig.MapLookuper(map[string]string{}),
		Dial: func(config.Temporal) (client.Client, error) { return nil, errors.New("connection refused") }}
	if code := c.Run(context.Background(), []string{"status"}); code != 2 {
		t.Fatalf("exit %d, want 2\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"UNKNOWN", "temporal: connection refused", "bigquery: not configured"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if code := c.Run(context.Background(), []string{"status", "--output", "yaml"}); code != ExitUsage {
		t.Fatalf("--output yaml: exit %d", code)
	}
}

// KtpipeAuditStale in the rules waits what workflows.AuditStaleAge says:
// three served audit intervals, AuditStaleAfter at least (also with none
// served).
func TestAuditStaleAgeIsTheRules(t *testing.T) {
	rules, err := os.ReadFile("../ops/prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("> clamp_min(3 * max(ktpipe_audit_interval_seconds) or vector(0), %d)", int(workflows.AuditStaleAfter.Seconds()))
	if !strings.Contains(string(rules), want) {
		t.Errorf("rules.yml's KtpipeAuditStale lacks %q", want)
	}
	for every, want := range map[time.Duration]time.Duration{0: 15 * time.Minute, time.Minute: 15 * time.Minute,
		5 * time.Minute: 15 * time.Minute, 10 * time.Minute: 30 * time.Minute, 24 * time.Hour: 72 * time.Hour} {
		if got := workflows.AuditStaleAge(every); got != want {
			t.Errorf("AuditStaleAge(%s) = %s, want %s", every, got, want)
		}
	}
}
