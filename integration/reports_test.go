package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/warehouse"
)

// TestReportsPrintsWhatItCanAndNamesAMissingView: a view missing (a
// worker killed between DROP and CREATE, before views were replaced only
// when changed) must not hide the other reports; the command names it and
// exits 1.
func TestReportsPrintsWhatItCanAndNamesAMissingView(t *testing.T) {
	ctx := context.Background()
	emu, err := devstack.StartEmulator(ctx, project, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Stop)
	bq, err := emu.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bq.Close() })
	dataset := fmt.Sprintf("it_reports_%d", seq.Add(1))
	wh, err := warehouse.New(bq, project, dataset, "US")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wh.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	missing := warehouse.Views[0]
	job, err := bq.Query(fmt.Sprintf("DROP VIEW `%s.%s.%s`", project, dataset, missing.Name)).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := job.Wait(ctx); err != nil || st.Err() != nil {
		t.Fatal(err, st.Err())
	}
	var out, errOut bytes.Buffer
	c := &control.CLI{Stdout: &out, Stderr: &errOut,
		Env:  envconfig.MapLookuper(map[string]string{"BIGQUERY_PROJECT": project, "BIGQUERY_DATASET": dataset, "BIGQUERY_ENDPOINT": emu.Endpoint}),
		Dial: func(config.Temporal) (client.Client, error) { t.Fatal("reports needs no Temporal"); return nil, nil }}
	// --since all reads the views themselves (a bounded run reads their
	// queries over the fact partitions, which a dropped view does not stop).
	if code := c.Run(ctx, []string{"reports", "--limit", "3", "--since", "all"}); code != control.ExitFailed {
		t.Fatalf("exit %d, want %d\n%s%s", code, control.ExitFailed, out.String(), errOut.String())
	}
	for _, v := range warehouse.PrintedViews(false)[1:] {
		if !strings.Contains(out.String(), "("+v.Name+")") {
			t.Errorf("report %s not printed:\n%s", v.Name, out.String())
		}
	}
	// Without a user map, its team would be "unknown" for everyone.
	if strings.Contains(out.String(), "(report_daily_spend_by_user_team)") {
		t.Errorf("the user map's team is printed without a user map:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "1 of 7 reports could not be read ("+missing.Name+")") {
		t.Errorf("stderr does not name the missing view:\n%s", errOut.String())
	}
}
