package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
)

// TestStarterCLI drives the ktpipe commands a data engineer types against
// the real dev server, emulator and simulator.
func TestStarterCLI(t *testing.T) {
	s := newStack(t, simConfig(), true)
	env := envconfig.MapLookuper(map[string]string{
		"TEMPORAL_ADDRESS": temporalSrv.FrontendHostPort(), "KTPIPE_TASK_QUEUE": s.tq,
		"KEEPTRUSTS_BASE_URL": s.simURL, "KEEPTRUSTS_API_TOKEN": token,
		"BIGQUERY_PROJECT": project, "BIGQUERY_DATASET": s.dataset, "BIGQUERY_ENDPOINT": s.emu.Endpoint,
		"KTPIPE_BACKFILL_WINDOW": "48h", "KTPIPE_EXPORT_FORMAT": "json",
	})
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		c := &control.CLI{Env: env, Stdout: &out, Stderr: &errOut,
			Dial: func(cfg config.Temporal) (client.Client, error) { return app.DialTemporal(cfg, quietLogger()) }}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a pull or backfill on a loaded CI machine
		defer cancel()
		code := c.Run(ctx, args)
		return code, out.String() + errOut.String()
	}
	mustRun := func(args ...string) string {
		t.Helper()
		code, out := run(args...)
		if code != control.ExitOK {
			t.Fatalf("ktpipe %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	if out := mustRun("schedule", "apply", "--paused", "--start", "30d"); !strings.Contains(out, "created") || !strings.Contains(out, s.tq+"-staging-cleanup created") {
		t.Fatalf("apply: %s", out)
	}
	t.Cleanup(func() {
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-incremental-pull").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-staging-cleanup").Delete(context.Background())
	})
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
	if out := mustRun("schedule", "trigger", "--wait"); !strings.Contains(out, "pulled") {
		t.Fatalf("trigger: %s", out)
	}
	s.assertExactlyOnce(since, until)
	if out := mustRun("reconcile", "--since", "4d", "--step", "24h", "--wait"); !strings.Contains(out, "0 windows with an unexplained gap") {
		t.Fatalf("reconcile: %s", out)
	}
	out := mustRun("status")
	for _, want := range []string{"schedule " + s.tq + "-incremental-pull", "failed workflows: 0", "checkpoint incremental_pull_cursor: \"c1."} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	if out := mustRun("reports", "--limit", "3"); !strings.Contains(out, "Daily AI spend by team") || !strings.Contains(out, "Model usage distribution") {
		t.Fatalf("reports: %s", out)
	}
	if code, out := run("replay", "--load-id", "never-staged", "--wait"); code != control.ExitFailed || !strings.Contains(out, "nothing staged") {
		t.Fatalf("replay of an unknown load: exit %d %s", code, out)
	}
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
