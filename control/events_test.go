package control_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
)

// sourceCLI is a CLI whose Keeptrusts API is a simulator with no history
// and three events that just arrived.
func sourceCLI(t *testing.T) (*ktsim.Server, map[string]string, []string) {
	t.Helper()
	cfg := ktsim.DefaultConfig()
	cfg.HistoryEvents, cfg.InvalidRate = 0, 0
	cfg.ExportQueued, cfg.ExportRunning = time.Millisecond, time.Millisecond
	sim := ktsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	ids := sim.Ingest(3, 0)
	return sim, map[string]string{"KEEPTRUSTS_BASE_URL": srv.URL, "KEEPTRUSTS_API_TOKEN": cfg.Token}, ids
}

// The guide's `kt events list --since 5m --limit 1`: the first event of
// the last five minutes, as a table and as the API's JSON.
func TestEventsListAsTheGuideShowsIt(t *testing.T) {
	_, env, ids := sourceCLI(t)
	c, out, stderr := cli(env)
	if code := c.Run(context.Background(), []string{"events", "list", "--since", "5m", "--limit", "1"}); code != control.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TIMESTAMP") || !strings.Contains(lines[1], ids[0]) {
		t.Fatalf("table:\n%s\nwant a header and the first event %s", out, ids[0])
	}

	c, out, stderr = cli(env)
	if code := c.Run(context.Background(), []string{"events", "list", "--since", "5m", "--limit", "1", "--output", "json"}); code != control.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var evs []map[string]any
	if err := json.Unmarshal(out.Bytes(), &evs); err != nil || len(evs) != 1 || evs[0]["id"] != ids[0] {
		t.Fatalf("json output %s (%v): want one event %s", out, err, ids[0])
	}
}

// The guide's `kt export list --format table`: every export job, newest
// first, with status, rows and error.
func TestExportsListAsATable(t *testing.T) {
	_, env, _ := sourceCLI(t)
	api, err := keeptrusts.New(env["KEEPTRUSTS_BASE_URL"], env["KEEPTRUSTS_API_TOKEN"])
	if err != nil {
		t.Fatal(err)
	}
	exp, _, err := api.CreateExport(context.Background(), keeptrusts.ExportRequest{Type: "events", Format: "ndjson", Since: "1h"}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	c, out, stderr := cli(env)
	if code := c.Run(context.Background(), []string{"exports", "list"}); code != control.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], exp.ID+" ") || !strings.Contains(lines[1], "ndjson") {
		t.Fatalf("table:\n%s\nwant a header and export %s", out, exp.ID)
	}
	c, out, _ = cli(env)
	if code := c.Run(context.Background(), []string{"exports", "list", "--output", "json"}); code != control.ExitOK {
		t.Fatalf("exit %d", code)
	}
	var exps []keeptrusts.Export
	if err := json.Unmarshal(out.Bytes(), &exps); err != nil || len(exps) != 1 || exps[0].ID != exp.ID {
		t.Fatalf("json output %s (%v)", out, err)
	}
}

// Bad flags name the flag and the rule, exit 2, and call nothing.
func TestSourceListRefusesBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"events"}, "events: want list"},
		{[]string{"events", "list", "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"events", "list", "--limit", "20000"}, "--limit 20000: want 1..10000"},
		{[]string{"events", "list", "--output", "xml"}, `--output "xml": want table or json`},
		{[]string{"events", "list", "--decision", "maybe"}, `--decision "maybe"`},
		{[]string{"exports", "list", "--status", "done"}, `--status "done"`},
		{[]string{"exports", "list", "--limit", "501"}, "--limit 501: want 1..500"},
		{[]string{"exports", "list", "--since", "1h"}, "flags of events list"},
	} {
		// No API configured: a bad flag must be refused before any call.
		c, _, stderr := cli(map[string]string{})
		if code := c.Run(context.Background(), tt.args); code != control.ExitUsage || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want %d and %q", tt.args, code, stderr, control.ExitUsage, tt.want)
		}
	}
}
