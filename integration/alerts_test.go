package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/activities"
	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/metrics"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/workflows"
)

// alertStack is a stack whose worker serves metrics, and a real
// Prometheus scraping it with the shipped rules (durations shortened).
type alertStack struct {
	*stack
	m        *metrics.Metrics
	srv      *metrics.Server
	addr     string
	client   client.Client
	prom     *devstack.Prometheus
	runs     int
	interval time.Duration // the audit interval
	// brokenStaging, when set, is a staging directory the worker's look
	// at the pending marks uses instead of the stack's (see lookStore).
	brokenStaging atomic.Pointer[string]
}

// TestEveryAlertFiresFromItsCauseAndResolves makes each alert of
// ops/prometheus/rules.yml fire in a real Prometheus that scrapes a real
// worker, by inducing its cause through the simulator and the warehouse,
// and resolve when the cause is gone. The rules are the shipped file's
// expressions and thresholds; only `for:` and hour-long windows are
// shortened (devstack.ShortRules) so it runs in minutes.
func TestEveryAlertFiresFromItsCauseAndResolves(t *testing.T) {
	cfg := simConfig()
	cfg.HistoryDays = 1
	cfg.HistoryEvents = 400
	cfg.InvalidRate = 0 // schema violations only when the test makes them
	cfg.LateRate = 0
	a := newAlertStack(t, cfg)
	ctx := context.Background()
	now := time.Now().UTC()

	// No audit has run: the gauges it feeds are unknown, and that is an alert.
	a.waitAlert("KtpipeAuditStale", true)

	// Lag, and completeness: the API holds a day of events, the warehouse none.
	a.audit()
	a.waitAlert("KtpipeAuditStale", false)
	a.waitAlert("KtpipeIngestionLag", true)
	a.waitAlert("KtpipeCompletenessLow", true)
	a.pull()
	a.audit()
	a.waitAlert("KtpipeIngestionLag", false)
	a.waitAlert("KtpipeCompletenessLow", false)

	// Schema violations: invalid events arrive and are quarantined.
	a.sim.IngestInvalid(3)
	a.pull()
	a.audit()
	a.waitAlert("KtpipeSchemaViolations", true)
	time.Sleep(a.interval) // the next audit interval has none
	a.audit()
	a.waitAlert("KtpipeSchemaViolations", false)

	// Duplicates: a copy of a row written into the fact table outside ktpipe.
	var cols, sel []string
	for _, f := range bqschema.EventRowSchema() {
		cols = append(cols, "`"+f.Name+"`")
		if f.Name == "load_id" {
			sel = append(sel, "@outside")
		} else {
			sel = append(sel, "`"+f.Name+"`")
		}
	}
	outside := bigquery.QueryParameter{Name: "outside", Value: "outside-ktpipe"}
	a.exec(fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %[1]s WHERE event_id = (SELECT MIN(event_id) FROM %[1]s) AND load_id != @outside",
		a.table(schemas.TableFact), strings.Join(cols, ", "), strings.Join(sel, ", ")), outside)
	// commit_log has no row for it: a scheduled audit carries the day's
	// counts (unless the day moved), one that recounts sees the copy.
	a.audit()
	a.checkCarried()
	a.recount()
	a.waitAlert("KtpipeDuplicateEvents", true)
	a.exec(fmt.Sprintf("DELETE FROM %s WHERE load_id = @outside", a.table(schemas.TableFact)), outside)
	a.recount()
	a.waitAlert("KtpipeDuplicateEvents", false)

	// Completeness: an event of the hours the audit checks, and one of
	// yesterday (the daily reconcile's day), go missing from the warehouse.
	checked := now.Add(-workflows.DefaultCompletenessDelay).Truncate(time.Hour)
	day := now.Truncate(24 * time.Hour)
	var lost []time.Time
	for _, w := range [][2]time.Time{{checked.Add(-3 * time.Hour), checked}, {day.Add(-24 * time.Hour), day}} {
		if ts, ok := a.deleteOneFact(w[0], w[1]); ok {
			lost = append(lost, ts)
		}
	}
	if len(lost) != 2 {
		t.Fatalf("found %d of 2 events to lose (a window without events?)", len(lost))
	}
	a.recount()
	a.reconcile()
	a.waitAlert("KtpipeCompletenessLow", true)
	a.waitAlert("KtpipeReconcileIncomplete", true)
	for _, ts := range lost {
		h := ts.Truncate(time.Hour)
		run, err := a.ctl.StartReplay(ctx, workflows.ReplayInput{Since: h, Until: h.Add(time.Hour), Tuning: a.tuning})
		if err != nil {
			t.Fatal(err)
		}
		if err := run.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	a.audit()
	a.reconcile()
	a.waitAlert("KtpipeCompletenessLow", false)
	a.waitAlert("KtpipeReconcileIncomplete", false)

	// Pull stalled: the last checkpoint is 20 minutes old (> 2 × 1m + 10m).
	a.exec(fmt.Sprintf("UPDATE %s SET updated_at = @t WHERE key = @k", a.table(schemas.TableState)),
		bigquery.QueryParameter{Name: "t", Value: time.Now().Add(-20 * time.Minute)},
		bigquery.QueryParameter{Name: "k", Value: workflows.DefaultCheckpointKey})
	a.waitAlert("KtpipePullStalled", true)
	a.pull()
	a.waitAlert("KtpipePullStalled", false)

	// API failures: every request answered 500 while an audit asks.
	a.sim.SetFaults(ktsim.Faults{ErrorRate: 1})
	run := a.start(workflows.Audit, workflows.AuditInput{Interval: a.interval, Tuning: a.tuning})
	a.waitAlert("KtpipeAPIFailures", true)
	a.sim.SetFaults(ktsim.Faults{})
	a.waitAlert("KtpipeAPIFailures", false)
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}

	// A failed export: every export fails, the load gives up (a failed workflow).
	a.sim.SetFaults(ktsim.Faults{ExportFailRate: 1})
	h := now.Truncate(time.Hour).Add(-2 * time.Hour)
	run = a.start(workflows.ExportLoad, workflows.ExportLoadInput{Since: h, Until: h.Add(time.Hour), Tuning: a.tuning})
	if err := run.Get(ctx, nil); err == nil {
		t.Fatal("an export load whose exports all fail succeeded")
	}
	a.sim.SetFaults(ktsim.Faults{})
	a.waitAlert("KtpipeExportFailed", true)
	a.waitAlert("KtpipeWorkflowFailed", true)
	a.waitAlert("KtpipeExportFailed", false) // the window passed
	a.waitAlert("KtpipeWorkflowFailed", false)

	// Compaction behind: a load marked pending long ago (the compaction
	// every 5 minutes: the rule's bound is 2 intervals + 15 minutes) and
	// never committed; then its mark goes, as the compaction's
	// FinishLoads removes it.
	a.m.SetCompactInterval(5 * time.Minute)
	mark := filepath.Join(a.staging, filepath.FromSlash(activities.PendingKey("load-stuck")))
	if err := os.MkdirAll(filepath.Dir(mark), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mark, []byte(`{"source":"pull","manifest":{"load_id":"load-stuck"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(mark, old, old); err != nil {
		t.Fatal(err)
	}
	a.waitAlert("KtpipeCompactionBehind", true)
	if err := os.Remove(mark); err != nil {
		t.Fatal(err)
	}
	a.waitAlert("KtpipeCompactionBehind", false)

	// The look at the pending marks fails, and then works again: its
	// staging directory is under a regular file, which the filesystem
	// refuses to list (ENOTDIR, even to root), as it refuses a volume
	// unreadable to the worker (a missing directory reads as none
	// pending). The alert needs the compaction on.
	a.m.SetCompactInterval(5 * time.Minute)
	file := filepath.Join(t.TempDir(), "not-a-directory")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(file, "staging")
	a.brokenStaging.Store(&broken)
	a.waitAlert("KtpipePendingLookFailing", true)
	a.brokenStaging.Store(nil)
	a.waitAlert("KtpipePendingLookFailing", false)

	// Worker down: the process stops answering scrapes, then comes back.
	a.workers.Stop()
	a.srv.Shutdown()
	a.waitAlert("KtpipeWorkerDown", true)
	a.serve()
	a.waitAlert("KtpipeWorkerDown", false)
}

func newAlertStack(t *testing.T, cfg ktsim.Config) *alertStack {
	t.Helper()
	s := newStack(t, cfg, false)
	a := &alertStack{stack: s, m: metrics.New(), interval: 15 * time.Second}
	t.Cleanup(func() { a.m.Close() })
	a.m.SetPullInterval(time.Minute)
	api, err := keeptrusts.New(s.simURL, token, keeptrusts.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		keeptrusts.WithObserver(app.APIObserver(a.m)))
	if err != nil {
		t.Fatal(err)
	}
	s.acts.API, s.acts.Metrics = api, a.m
	// The worker's own client, reporting the SDK's metrics.
	if a.client, err = client.Dial(client.Options{HostPort: temporalSrv.FrontendHostPort(), Logger: quietSDKLogger{},
		MetricsHandler: a.m.SDKHandler()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.client.Close)
	s.ctl.Client = a.client
	a.addr = "127.0.0.1:0"
	a.serve()
	t.Cleanup(func() { a.srv.Shutdown() })
	// Every worker reads the audit and pipeline_state into its gauges;
	// here both every second (a worker reads them when due: app.gaugeReads).
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			if _, err := app.RefreshAuditGauges(ctx, s.wh, a.m, time.Now()); err != nil && ctx.Err() == nil {
				t.Logf("refresh audit gauges: %v", err)
			}
			if _, err := app.RefreshCheckpointGauges(ctx, s.wh, a.m, time.Now()); err != nil && ctx.Err() == nil {
				t.Logf("refresh checkpoint gauges: %v", err)
			}
			if err := activities.RefreshPendingGauges(ctx, a.lookStore(), a.m); err != nil && ctx.Err() == nil {
				t.Logf("refresh pending gauges: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	rules, err := os.ReadFile(filepath.Join("..", "ops", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(t.TempDir(), "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	a.prom, err = devstack.StartPrometheus(context.Background(), devstack.PrometheusOptions{
		Targets: []string{a.addr}, Rules: devstack.ShortRules(rules, 2*time.Second, 20*time.Second),
		ScrapeInterval: time.Second, EvalInterval: time.Second, Dir: t.TempDir(), Logs: logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.prom.Stop)
	return a
}

// serve starts the workers and the metrics endpoint (again, on the same
// address, after a stop).
func (a *alertStack) serve() {
	a.t.Helper()
	a.workers = app.NewWorkers(a.client, a.tq, a.acts, 4, 50)
	if err := a.workers.Start(); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(a.workers.Stop)
	srv, err := a.m.Serve(a.addr, quietLogger())
	if err != nil {
		a.t.Fatal(err)
	}
	a.srv, a.addr = srv, srv.Addr.String()
}

func (a *alertStack) start(wf, in any) client.WorkflowRun {
	a.t.Helper()
	a.runs++
	run, err := a.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: fmt.Sprintf("%s-alerts-%d", a.tq, a.runs), TaskQueue: a.tq}, wf, in)
	if err != nil {
		a.t.Fatal(err)
	}
	return run
}

func (a *alertStack) runOK(name string, wf, in any) {
	a.t.Helper()
	run := a.start(wf, in)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := run.Get(ctx, nil); err != nil {
		a.t.Fatalf("%s: %v", name, err)
	}
	recordHistory(a.t, run.GetID(), run.GetRunID(), name)
}

func (a *alertStack) audit() {
	a.runOK("audit", workflows.Audit, workflows.AuditInput{Interval: a.interval, Tuning: a.tuning})
}

// recount runs an audit that takes every count afresh: after the test
// wrote the warehouse outside ktpipe.
func (a *alertStack) recount() {
	a.runOK("audit", workflows.Audit, workflows.AuditInput{Interval: a.interval, Recount: true, Tuning: a.tuning})
}

// checkCarried checks the latest audit, run after a write outside
// ktpipe and no commit: it carried the counts of the audit before it,
// unless the day had moved on (then it counted); when only the hours
// it checks had moved on, it carried the days' counts and counted the
// hours.
func (a *alertStack) checkCarried() {
	a.t.Helper()
	rows, err := a.wh.AuditHistory(context.Background(), time.Now().Add(-time.Hour), 2)
	if err != nil || len(rows) != 2 {
		a.t.Fatalf("the last two audits: %d rows, %v", len(rows), err)
	}
	last, before := rows[0], rows[1]
	sameHours := last.CompletenessEnd.Equal(before.CompletenessEnd)
	switch {
	case !last.AuditedAt.Truncate(24 * time.Hour).Equal(before.AuditedAt.Truncate(24 * time.Hour)):
		a.t.Logf("the audit's day moved on: it counted (at %s)", last.CountedAt)
	case !last.CountedAt.Equal(before.CountedAt) || last.FactRows != before.FactRows || last.FactDuplicateRows != before.FactDuplicateRows ||
		sameHours && last.WarehouseCount != before.WarehouseCount:
		a.t.Errorf("with nothing committed, the audit counted: %+v; want the counts of %+v", last, before)
	case !sameHours:
		// The hours the audit before counted ahead hold the new ones: summed
		// from them, not counted.
		want, held := before.CountedHours.Sum(payload.Window{Since: last.CompletenessStart, Until: last.CompletenessEnd})
		if held && (!last.CountedHours.Since.Equal(before.CountedHours.Since) || last.WarehouseCount != want) {
			a.t.Errorf("the audit's hours moved within the hours counted: %d from hours of %s; want %d from the hours of %s",
				last.WarehouseCount, last.CountedHours.Since, want, before.CountedHours.Since)
		}
		a.t.Logf("the audit's hours moved on (held by the hours counted: %t); it carried the days' counts of %s", held, last.CountedAt)
	}
}

func (a *alertStack) reconcile() {
	a.runOK("scheduled_reconcile", workflows.ScheduledReconcile, workflows.ScheduledReconcileInput{Step: 6 * time.Hour, Tuning: a.tuning})
}

func (a *alertStack) pull() {
	a.t.Helper()
	run := a.start(workflows.IncrementalPull, workflows.IncrementalPullInput{Start: "48h", Tuning: a.tuning})
	if err := run.Get(context.Background(), nil); err != nil {
		a.t.Fatalf("pull: %v", err)
	}
}

func (a *alertStack) table(name string) string {
	return fmt.Sprintf("`%s.%s.%s`", project, a.dataset, name)
}

func (a *alertStack) exec(sql string, params ...bigquery.QueryParameter) {
	a.t.Helper()
	q := a.bq.Query(sql)
	q.Parameters = params
	job, err := q.Run(context.Background())
	if err != nil {
		a.t.Fatalf("%s: %v", sql, err)
	}
	st, err := job.Wait(context.Background())
	if err == nil {
		err = st.Err()
	}
	if err != nil {
		a.t.Fatalf("%s: %v", sql, err)
	}
}

// deleteOneFact removes one fact row with since <= timestamp < until
// and returns its timestamp.
func (a *alertStack) deleteOneFact(since, until time.Time) (time.Time, bool) {
	a.t.Helper()
	q := a.bq.Query(fmt.Sprintf("SELECT event_id, event_timestamp FROM %s WHERE event_timestamp >= @s AND event_timestamp < @u ORDER BY event_id LIMIT 1",
		a.table(schemas.TableFact)))
	q.Parameters = []bigquery.QueryParameter{{Name: "s", Value: since}, {Name: "u", Value: until}}
	it, err := q.Read(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	var r struct {
		ID string    `bigquery:"event_id"`
		TS time.Time `bigquery:"event_timestamp"`
	}
	if err := it.Next(&r); err != nil {
		return time.Time{}, false
	}
	a.exec(fmt.Sprintf("DELETE FROM %s WHERE event_id = @id", a.table(schemas.TableFact)), bigquery.QueryParameter{Name: "id", Value: r.ID})
	return r.TS, true
}

// waitAlert waits (at most 90 s) until the alert is firing, or until it
// is neither firing nor pending.
func (a *alertStack) waitAlert(name string, firing bool) {
	a.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var seen []string
	for {
		alerts, err := a.prom.Alerts(context.Background())
		if err != nil {
			a.t.Fatal(err)
		}
		state := ""
		seen = seen[:0]
		for _, al := range alerts {
			seen = append(seen, al.Labels["alertname"]+"="+al.State)
			if al.Labels["alertname"] == name && state != "firing" {
				state = al.State
			}
		}
		if (firing && state == "firing") || (!firing && state == "") {
			a.t.Logf("%s: %s", name, map[bool]string{true: "firing", false: "resolved"}[firing])
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(seen)
			a.t.Fatalf("%s: want firing=%v after 90s; alerts now: %s", name, firing, strings.Join(seen, ", "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lookStore is the store the worker's look at the pending marks lists:
// the stack's, or brokenStaging's directory while it is set.
func (a *alertStack) lookStore() staging.Store {
	if root := a.brokenStaging.Load(); root != nil {
		return staging.Dir{Root: *root}
	}
	return a.acts.Store
}

// quietSDKLogger drops the SDK's logs (the worker's client).
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}
