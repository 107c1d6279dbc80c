package integration

import (
	"bytes"
	"context"
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
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	if out := mustRun("schedule", "apply", "--paused", "--start", "30d"); !strings.Contains(out, "created") || !strings.Contains(out, s.tq+"-staging-cleanup created") ||
		!strings.Contains(out, s.tq+"-audit created: audit every 5m0s") || !strings.Contains(out, s.tq+"-daily-reconcile created") ||
		!strings.Contains(out, "note: a pull every 1h0m0s alone leaves events up to 1h0m0s behind") {
		t.Fatalf("apply: %s", out)
	}
	t.Cleanup(func() {
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-incremental-pull").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-staging-cleanup").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-audit").Delete(context.Background())
		temporalSrv.Client().ScheduleClient().GetHandle(context.Background(), s.tq+"-daily-reconcile").Delete(context.Background())
	})
	if out := mustRun("schedule", "describe"); !strings.Contains(out, "paused") || !strings.Contains(out, "every 1h0m0s") {
		t.Fatalf("describe: %s", out)
	}
	if out := mustRun("backfill", "--since", "4d", "--parallelism", "2", "--wait"); !strings.Contains(out, "backfilled 3 windows (3 loaded") {
		t.Fatalf("backfill: %s", out)
	}
	since, until := s.historyWindow()
	s.assertExactlyOnce(since, until)
	if out := mustRun("backfill", "--since", "4d", "--parallelism", "2", "--wait"); !strings.Contains(out, "backfilled 3 windows (3 loaded") {
		t.Fatalf("second backfill must attach to the finished one: %s", out)
	}
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
