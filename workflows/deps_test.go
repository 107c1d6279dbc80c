package workflows_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Workflow code and its tests link what crosses the Temporal boundary
// (payload) and the SDK, not the clients the activities use: those made
// every workflow test, replay and fuzzed decoder build BigQuery, Cloud
// Storage and Prometheus. A dependency that brings one back fails here.
func TestWorkflowsLinkNoClients(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps -test: %v\n%s", err, out)
	}
	banned := []string{
		"cloud.google.com/go/bigquery",
		"cloud.google.com/go/storage",
		"github.com/prometheus/",
		"github.com/ktpipe/ktpipe/activities",
		"github.com/ktpipe/ktpipe/warehouse",
		"github.com/ktpipe/ktpipe/staging",
		"github.com/ktpipe/ktpipe/keeptrusts",
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, b := range banned {
			if d == b || strings.HasPrefix(d, strings.TrimSuffix(b, "/")+"/") {
				t.Errorf("workflows links %s", d)
			}
		}
	}
	if len(deps) < 10 {
		t.Fatalf("go list listed %d packages, not the dependencies: %s", len(deps), out)
	}
}
