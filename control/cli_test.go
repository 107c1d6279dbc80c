package control_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
)

func cli(env map[string]string) (*control.CLI, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return &control.CLI{
		Env: envconfig.MapLookuper(env), Stdout: &out, Stderr: &errOut,
		Dial: func(config.Temporal) (client.Client, error) { return nil, errors.New("no Temporal in unit tests") },
	}, &out, &errOut
}

func TestUsageErrorsExitTwo(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"schedule"}, "want apply, pause"},
		{[]string{"backfill"}, "--since is required"},
		{[]string{"backfill", "--since", "yesterday"}, "--since"},
		{[]string{"backfill", "--since", "2d", "--until", "nope"}, "--until"},
		{[]string{"backfill", "--since", "2026-11-20T00:00:00Z", "--until", "2026-11-10T00:00:00Z"}, "is not before"},
		{[]string{"export", "--since", "1d", "stray"}, `unknown command "stray"`},
		{[]string{"export", "--since", "1d", "--format", "xml"}, `--format "xml": want one of ndjson, json, csv`},
		{[]string{"backfill", "--since", "1d", "--format", "parquet", "--wait"}, `--format "parquet"`},
		{[]string{"backfill", "--since", "1d", "--window", "10s"}, "--window 10s: at least 1m"},
		{[]string{"backfill", "--since", "1d", "--parallelism", "0"}, "--parallelism 0: between 1 and 32"},
		{[]string{"schedule", "describe", "--output", "yaml"}, `--output "yaml": want table or json`},
		{[]string{"export", "-o", "xml", "--since", "1d"}, `--output "xml"`},
		{[]string{"reconcile", "--since", "1d", "--step", "0s"}, "--step 0s: at least 1m"},
		{[]string{"schedule", "backfill-history", "--since", "900d"}, "more than 400"},
		{[]string{"replay", "--load-id", "x", "--since", "1d"}, "not both"},
		{[]string{"replay", "--load-id", "x", "--until", "2026-11-02T00:00:00Z"}, "not both"},
		{[]string{"reports", "--limit", "0"}, "--limit 0: between 1 and 10000"},
		{[]string{"reports", "-o", "json", "--limit", "-1"}, "--limit -1: between 1 and 10000"},
		{[]string{"schedule", "apply", "--interval", "1ms"}, "--interval and --catchup: at least 1m"},
		{[]string{"reconcile", "--since", "3650d", "--step", "1m"}, "more than 2000 in one reconcile"},
		{[]string{"reports", "--timeout", "0s"}, "--timeout 0s: between 1s and 1h"},
		{[]string{"reports", "--since", "last week"}, "--since: \"last week\" must be an RFC 3339 time or a duration like 30m, 24h, 30d"},
		{[]string{"replay", "--rule", "must be a known gateway"}, "--rule needs --quarantine"},
		{[]string{"replay", "--quarantine", "--load-id", "x"}, "--load-id or --quarantine, not both"},
		{[]string{"replay", "--quarantine", "--until", "2026-11-02T00:00:00Z"}, "--until needs --since"},
		{[]string{"replay", "--quarantine", "--since", "soon"}, "--since: "},
		{[]string{"reconcile", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"reports", "-o", "yaml"}, `--output "yaml": want table or json`},
		{[]string{"tail", "--decision", "block", "--output"}, "--output needs a value"},
	}
	for _, tt := range tests {
		c, _, stderr := cli(map[string]string{})
		if code := c.Run(context.Background(), tt.args); code != control.ExitUsage {
			t.Errorf("%v: exit %d, want %d", tt.args, code, control.ExitUsage)
		}
		if !strings.Contains(stderr.String(), tt.want) || !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("%v: stderr %q, want %q and the usage", tt.args, stderr.String(), tt.want)
		}
	}
}

func TestConfigErrorsNameTheVariableAndExitTwo(t *testing.T) {
	c, _, stderr := cli(map[string]string{"TEMPORAL_ADDRESS": "nohostport"})
	if code := c.Run(context.Background(), []string{"schedule", "describe"}); code != control.ExitUsage {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "TEMPORAL_ADDRESS") {
		t.Fatalf("stderr %q", stderr.String())
	}
	// schedule apply reads every setting before it dials: a bad audit
	// interval changes no schedule.
	c, _, stderr = cli(map[string]string{"KTPIPE_AUDIT_INTERVAL": "30s"})
	if code := c.Run(context.Background(), []string{"schedule", "apply"}); code != control.ExitUsage || !strings.Contains(stderr.String(), "KTPIPE_AUDIT_INTERVAL") {
		t.Fatalf("schedule apply with a bad audit interval: exit %d stderr %q", code, stderr.String())
	}
	// A profile that cannot be read is configuration too, said before
	// anything is dialled.
	file := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(file, []byte("[profile.default]\naddress = \"127.0.0.1:7233\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, stderr = cli(map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "prod"})
	if code := c.Run(context.Background(), []string{"schedule", "describe"}); code != control.ExitUsage || !strings.Contains(stderr.String(), `profile "prod"`) {
		t.Fatalf("schedule describe with no such profile: exit %d stderr %q", code, stderr.String())
	}
	c, _, stderr = cli(map[string]string{"KEEPTRUSTS_BASE_URL": "http://x"})
	if code := c.Run(context.Background(), []string{"tail"}); code != control.ExitUsage || !strings.Contains(stderr.String(), "KEEPTRUSTS_API_TOKEN: missing required value") {
		t.Fatalf("exit %d stderr %q", code, stderr.String())
	}
}

func TestUnreachableTemporalExitsOne(t *testing.T) {
	c, _, stderr := cli(map[string]string{})
	if code := c.Run(context.Background(), []string{"schedule", "describe"}); code != control.ExitFailed || !strings.Contains(stderr.String(), "no Temporal") {
		t.Fatalf("exit %d stderr %q", code, stderr.String())
	}
	// status says it cannot tell (2), and why, on its own screen.
	c, stdout, _ := cli(map[string]string{})
	if code := c.Run(context.Background(), []string{"status"}); code != control.StatusUnknown || !strings.Contains(stdout.String(), "temporal: no Temporal") {
		t.Fatalf("status: exit %d stdout %q", code, stdout.String())
	}
	// The global --output reaches status's own JSON.
	c, stdout, _ = cli(map[string]string{})
	if code := c.Run(context.Background(), []string{"-o", "json", "status"}); code != control.StatusUnknown || !strings.HasPrefix(stdout.String(), "{") {
		t.Fatalf("status -o json: exit %d stdout %q", code, stdout.String())
	}
}

// The binary's CLI reads the process's environment (Env nil): reports
// reads KTPIPE_USER_MAP from there, and an unreachable warehouse ends at
// --timeout naming the report it was reading (exit 1), where it
// panicked on the nil Env and would have waited forever.
func TestReportsReadTheProcessEnvironmentAndEnd(t *testing.T) {
	t.Setenv("BIGQUERY_PROJECT", "my-project")
	t.Setenv("BIGQUERY_ENDPOINT", "http://127.0.0.1:1")
	var out, errOut bytes.Buffer
	c := &control.CLI{Stdout: &out, Stderr: &errOut}
	if code := c.Run(context.Background(), []string{"reports", "--timeout", "1s"}); code != control.ExitFailed {
		t.Fatalf("exit %d, want %d\n%s%s", code, control.ExitFailed, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "reports: gave up on the warehouse after 1s (--timeout): read report_daily_spend_by_team") {
		t.Errorf("output does not name what it could not read:\n%s%s", out.String(), errOut.String())
	}
}
