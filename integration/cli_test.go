package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/report"
)

// TestStarterCLI drives the ktpipe commands a data engineer types against
// the real dev server, emulator and simulator.
func TestStarterCLI(t *testing.T) {
	s := newStack(t, simConfig(), true)
	vars := map[string]string{
		"TEMPORAL_ADDRESS": temporalSrv.FrontendHostPort(), "KTPIPE_TASK_QUEUE": s.tq,
		"TEMPORAL_CONFIG_FILE": os.DevNull, // not the developer's own Temporal CLI profile
		"KEEPTRUSTS_BASE_URL":  s.simURL, "KEEPTRUSTS_API_TOKEN": token,
		"BIGQUERY_PROJECT": project, "BIGQUERY_DATASET": s.dataset, "BIGQUERY_ENDPOINT": s.emu.Endpoint,
		"KTPIPE_BACKFILL_WINDOW": "48h", "KTPIPE_EXPORT_FORMAT": "json",
	}
	env := envconfig.MapLookuper(vars)
	run := func(args ...string) (int, string) { return runCLI(env, args...) }
	mustRun := func(args ...string) string {
		t.Helper()
		code, out := run(args...)
		if code != control.ExitOK {
			t.Fatalf("ktpipe %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	if out := mustRun("schedule", "apply", "--paused", "--start", "30d"); !strings.Contains(out, "created") || !strings.Contains(out, s.tq+"-staging-cleanup created") ||
		!strings.Contains(out, s.tq+"-audit created: audit every 5m0s") || !strings.Contains(out, s.tq+"-daily-reconcile created") ||
		!strings.Contains(out, "note: a pull every 1h0m0s alone leaves events up to 1h0m0s behind") ||
		!strings.Contains(out, s.tq+"-compaction created: compaction of pending loads every 4h0m0s (no load is deferred") {
		t.Fatalf("apply: %s", out)
	}
	t.Cleanup(func() {
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-incremental-pull").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-staging-cleanup").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-audit").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-daily-reconcile").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-history-export").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-compaction").Delete(context.Background())
	})
	// Nothing deferred: a compaction run now commits nothing.
	if out := mustRun("schedule", "compact", "--wait"); !strings.Contains(out, "committed 0 loads") {
		t.Fatalf("compact: %s", out)
	}
	if out := mustRun("schedule", "describe"); !strings.Contains(out, "paused") || !strings.Contains(out, "every 1h0m0s") {
		t.Fatalf("describe: %s", out)
	}
	if out := mustRun("backfill", "--since", "4d", "--parallelism", "2", "--wait"); !strings.HasPrefix(out, "started ") ||
		!regexp.MustCompile(`\n3 +3 +0 +0 +\d+`).MatchString(out) {
		t.Fatalf("backfill: %s", out)
	}
	since, until := s.historyWindow()
	s.assertExactlyOnce(since, until)
	// The same backfill again says it was loaded, and by which run; it
	// does not print the earlier result as a new one.
	if out := mustRun("backfill", "--since", "4d", "--parallelism", "2", "--wait"); !strings.HasPrefix(out, "already loaded by "+s.tq+"-backfill-") ||
		!strings.Contains(out, "nothing started; pass --reload") || !strings.Contains(out, "result of that earlier run:") {
		t.Fatalf("second backfill must say the range was loaded: %s", out)
	}
	cliReloads(t, mustRun)
	if out := mustRun("schedule", "trigger", "--wait"); !strings.HasPrefix(out, "started ") || !strings.Contains(out, "batches  rows") {
		t.Fatalf("trigger: %s", out)
	}
	s.assertExactlyOnce(since, until)
	if out := mustRun("reconcile", "--since", "4d", "--step", "24h", "--wait"); !strings.Contains(out, "0 windows with an unexplained gap") {
		t.Fatalf("reconcile: %s", out)
	}
	// status against the real dev server and emulator, after an audit
	// that found nothing wrong: exit 0, under a paused schedule no next run.
	ensureAuditTable(t, s.bq, s.dataset)
	newest := s.factNewest()
	// A day of audits every 5 min (the lag chart's history), the newest clean.
	var audits []auditRow
	for i := 287; i >= 0; i-- {
		lag := float64((i * 37) % 240)
		if i >= 120 && i < 132 {
			lag = 420 // an hour the lag alert would have fired
		}
		if i == 0 {
			lag = 0
		}
		audits = append(audits, auditRow{At: time.Now().Add(-time.Duration(i) * 5 * time.Minute), APINewest: newest,
			WarehouseNewest: newest.Add(-time.Duration(lag) * time.Second), Lag: lag, FactRows: 1000, APICount: 100, WarehouseCount: 100})
	}
	insertAudit(t, s.bq, s.dataset, audits...)
	code, out := run("status")
	if code != control.ExitOK {
		t.Fatalf("status: exit %d, want 0\n%s", code, out)
	}
	for _, want := range []string{"ktpipe status: OK", s.tq + "-incremental-pull: paused, every 1h0m0s", "lag ", "0s (API newest",
		"reconcile ", "100.000 % complete", "failed in 24 h: 0", "cursor \"c1."} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "next run") {
		t.Fatalf("a paused schedule shows a next run:\n%s", out)
	}
	if code, out := run("status", "--output", "json"); code != control.ExitOK || !strings.Contains(out, `"health": "healthy"`) {
		t.Fatalf("status --output json: exit %d\n%s", code, out)
	}
	// With loads deferred (KTPIPE_COMPACT_EVERY set), status reads the
	// compaction's schedule too: applied paused above, nothing commits the
	// pending loads, so it fails; unpaused (and run just now by `schedule
	// compact`), it is healthy again.
	compactEnv := maps.Clone(vars)
	compactEnv["KTPIPE_COMPACT_EVERY"] = "4h"
	if code, out := runCLI(envconfig.MapLookuper(compactEnv), "status"); code != control.ExitFailed ||
		!strings.Contains(out, "KtpipeCompactionBehind: schedule "+s.tq+"-compaction is paused") {
		t.Fatalf("status with the compaction paused: exit %d, want 1 naming KtpipeCompactionBehind\n%s", code, out)
	}
	if err := temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-compaction").Unpause(context.Background(),
		client.ScheduleUnpauseOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(envconfig.MapLookuper(compactEnv), "status"); code != control.ExitOK ||
		!strings.Contains(out, s.tq+"-compaction: active, every 4h0m0s, next run") {
		t.Fatalf("status with the compaction running: exit %d, want 0 with its schedule\n%s", code, out)
	}
	html := filepath.Join(t.TempDir(), "report.html")
	// The default's days, from a time fixed here: the page is checked
	// against the warehouse over the same days.
	reportSince := time.Now().Add(-report.DefaultSince).UTC().Truncate(time.Second)
	if out := mustRun("reports", "--limit", "5", "--since", reportSince.Format(time.RFC3339), "--html", html); !strings.Contains(out, "Daily AI spend by team") ||
		!strings.Contains(out, "Model usage distribution") || !strings.Contains(out, "wrote "+html) {
		t.Fatalf("reports: %s", out)
	}
	checkReportInBrowser(t, s, html, 5, reportSince)
	if code, out := run("replay", "--load-id", "never-staged", "--wait"); code != control.ExitFailed || !strings.Contains(out, "nothing staged") {
		t.Fatalf("replay of an unknown load: exit %d %s", code, out)
	}
	// That failed workflow is an alert: status names it, links it, exits 1.
	link := "http://127.0.0.1:8233/namespaces/default/workflows/" + s.tq + "-replay-never-staged/"
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, out = run("status")
		if code == control.ExitFailed && strings.Contains(out, "KtpipeWorkflowFailed: 1 workflow failed") && strings.Contains(out, link) {
			break
		}
		if time.Now().After(deadline) { // visibility is eventually consistent
			t.Fatalf("status after a failed replay: exit %d, want 1 naming KtpipeWorkflowFailed and linking %s\n%s", code, link, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("ktpipe status:\n%s", out)

	// Audits now: the schedule's counts (the rows above were written
	// without counts), the next carries them with nothing committed since
	// (unless the day moved on), and one with --recount counts again.
	hours := regexp.MustCompile(`API events, (.+?);`)
	first := mustRun("schedule", "audit", "--wait")
	second := mustRun("schedule", "audit", "--wait")
	third := mustRun("schedule", "audit", "--recount", "--wait")
	t.Logf("ktpipe schedule audit, twice, then with --recount:\n%s%s%s", first, second, third)
	if !strings.Contains(first, "(counted now)") || !strings.Contains(first, "duplicates 0 of ") || !strings.Contains(third, "(counted now)") ||
		!strings.Contains(third, s.tq+"-audit-recount-") {
		t.Fatalf("schedule audit, then --recount: %s%s", first, third)
	}
	if a, b := hours.FindStringSubmatch(first), hours.FindStringSubmatch(second); a == nil || b == nil {
		t.Fatalf("schedule audit: no completeness hours in %q, %q", first, second)
	} else if a[1] == b[1] && !strings.Contains(second, "carried from the audit of ") {
		t.Fatalf("schedule audit with nothing committed since the last: %s", second)
	}
}

// factNewest is the newest event in the fact table.
func (s *stack) factNewest() time.Time {
	s.t.Helper()
	it, err := s.bq.Query(fmt.Sprintf("SELECT MAX(event_timestamp) FROM `%s.%s.fact_ai_event`", project, s.dataset)).Read(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	var r []bigquery.Value
	if err := it.Next(&r); err != nil {
		s.t.Fatal(err)
	}
	return r[0].(time.Time)
}

// cliReloads: another format is another load, not the earlier result; a
// completed one is reported, not repeated; --reload loads again; a flag
// overrides the environment. Backfill (over the range loaded above) and
// export alike. Only the first export is waited for: the loads the checks
// start are stopped once they are seen started, to keep the test short.
func cliReloads(t *testing.T, mustRun func(args ...string) string) {
	t.Helper()
	stop := func(out string) {
		t.Helper()
		id := strings.Fields(out)[1]
		if err := temporalSrv.Client().TerminateWorkflow(context.Background(), id, "", "test: seen started"); err != nil {
			t.Fatalf("terminate %s: %v", id, err)
		}
	}
	first := mustRun("export", "--since", "1d", "--format", "ndjson", "--wait")
	if !strings.HasPrefix(first, "started ") || !strings.Contains(first, "load id") {
		t.Fatalf("export: %s", first)
	}
	for _, cmd := range [][]string{{"backfill", "--since", "4d", "--parallelism", "2"}, {"export", "--since", "1d", "--format", "ndjson"}} {
		again := mustRun(cmd...)
		if !strings.HasPrefix(again, "already loaded by ") || !strings.Contains(again, "+gzip)") {
			t.Fatalf("%s again: %s", cmd[0], again)
		}
		id := strings.Fields(again)[3]
		csv := mustRun(append(cmd, "--format", "csv")...)
		if !strings.HasPrefix(csv, "started ") || strings.Fields(csv)[1] == id || !strings.Contains(csv, "(csv+gzip)") {
			t.Fatalf("%s --format csv after %s: %s", cmd[0], id, csv)
		}
		stop(csv)
		reload := mustRun(append(cmd, "--reload")...)
		if !strings.HasPrefix(reload, "started "+id+"-reload-") {
			t.Fatalf("%s --reload after %s: %s", cmd[0], id, reload)
		}
		stop(reload)
	}
	var res control.LoadOutcome
	out := mustRun("-o", "json", "export", "--since", "1d", "--gzip=false", "--format", "json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Outcome != "started" {
		t.Fatalf("export -o json: %v %s", err, out)
	}
	stop("started " + res.WorkflowID)
	if in, _ := json.Marshal(res.Input); !strings.Contains(string(in), `"format":"json"`) || strings.Contains(string(in), `"gzip"`) {
		t.Fatalf("--gzip=false under KTPIPE_EXPORT_GZIP's default true: input %s", in)
	}
}

// runCLI runs one ktpipe command with env, as a data engineer types it,
// and returns its exit code and what it printed.
func runCLI(env envconfig.Lookuper, args ...string) (int, string) {
	var out, errOut bytes.Buffer
	c := &control.CLI{Env: env, Stdout: &out, Stderr: &errOut,
		Dial: func(cfg config.Temporal) (client.Client, error) { return app.DialTemporal(cfg, quietLogger()) }}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a pull or backfill on a loaded CI machine
	defer cancel()
	code := c.Run(ctx, args)
	return code, out.String() + errOut.String()
}
