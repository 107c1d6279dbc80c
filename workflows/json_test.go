package workflows_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/workflows"
)

// Inputs recorded before the JSON names (Go field names, nanosecond
// durations) decode to the same values: histories keep replaying and
// continue-as-new runs keep their state.
func TestOldPayloadsDecodeUnchanged(t *testing.T) {
	since, until := time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)
	tuning := workflows.Tuning{PollInterval: 200 * time.Millisecond, MaxPollInterval: time.Second, HeartbeatTimeout: 3 * time.Second, WarehouseTimeout: 20 * time.Second}
	const oldTuning = `"Tuning":{"PollInterval":200000000,"MaxPollInterval":1000000000,"HeartbeatTimeout":3000000000,"WarehouseTimeout":20000000000,"Concurrency":0}`
	tests := []struct {
		old  string
		into any
		want any
	}{
		{`{"Since":"2026-11-22T21:00:00Z","Until":"2026-11-26T22:00:00Z","Window":21600000000000,"Parallelism":2,"Format":"csv","Gzip":true,` + oldTuning +
			`,"MaxWindowsPerRun":2,"Done":{"Windows":4,"Loaded":3,"Skipped":1,"Failed":0,"Rows":1144,"Quarantined":46},"Failed":["w: boom"]}`,
			&workflows.BackfillInput{}, &workflows.BackfillInput{Since: since, Until: until, Window: 6 * time.Hour, Parallelism: 2, Format: "csv", Gzip: true, Tuning: tuning,
				MaxWindowsPerRun: 2, Done: workflows.BackfillResult{Windows: 4, Loaded: 3, Skipped: 1, Rows: 1144, Quarantined: 46}, Failed: []string{"w: boom"}}},
		{`{"Since":"2026-11-22T21:00:00Z","Until":"2026-11-26T22:00:00Z","Format":"ndjson","Gzip":true,"Source":"",` + oldTuning + `}`,
			&workflows.ExportLoadInput{}, &workflows.ExportLoadInput{Since: since, Until: until, Format: "ndjson", Gzip: true, Tuning: tuning}},
		{`{"Since":"2026-11-22T21:00:00Z","Until":"2026-11-26T22:00:00Z","Step":86400000000000,"ReplayGaps":true,` + oldTuning + `}`,
			&workflows.ReconcileInput{}, &workflows.ReconcileInput{Since: since, Until: until, Step: 24 * time.Hour, ReplayGaps: true, Tuning: tuning}},
		{`{"LoadID":"died-after-split","Since":"0001-01-01T00:00:00Z","Until":"0001-01-01T00:00:00Z","Format":"","Gzip":false,` + oldTuning + `}`,
			&workflows.ReplayInput{}, &workflows.ReplayInput{LoadID: "died-after-split", Tuning: tuning}},
		{`{"CheckpointKey":"","Start":"30d","PageSize":150,"LateWindow":3600000000000,` + oldTuning + `,"Cursor":"c","Totals":{"Batches":1,"CursorResets":1}}`,
			&workflows.IncrementalPullInput{}, &workflows.IncrementalPullInput{Start: "30d", PageSize: 150, LateWindow: time.Hour, Tuning: tuning, Cursor: "c", Totals: workflows.PullTotals{Batches: 1, CursorResets: 1}}},
		{`{"Retention":604800000000000}`, &workflows.CleanupInput{}, &workflows.CleanupInput{Retention: 7 * 24 * time.Hour}},
		{`{"Window":2000000000}`, &workflows.WebhookBatchInput{}, &workflows.WebhookBatchInput{Window: 2 * time.Second}},
		{`{"LoadID":"l","ExportID":"e","RowCount":3,"Records":3,"Rows":2,"Quarantined":1,"Resent":0,"Chunks":1,"UnknownFields":null}`,
			&workflows.ExportLoadResult{}, &workflows.ExportLoadResult{LoadID: "l", ExportID: "e", RowCount: 3, Records: 3, Rows: 2, Quarantined: 1, Chunks: 1}},
	}
	for _, tt := range tests {
		if err := json.Unmarshal([]byte(tt.old), tt.into); err != nil {
			t.Fatalf("%T: %v", tt.into, err)
		}
		if !reflect.DeepEqual(tt.into, tt.want) {
			t.Errorf("%T:\n got %+v\nwant %+v", tt.into, tt.into, tt.want)
		}
	}
}

// What the Temporal UI shows and what an operator pastes: camelCase
// names, RFC 3339 times, durations as strings.
func TestInputsReadableInTheUI(t *testing.T) {
	in := workflows.BackfillInput{Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC),
		Window: 6 * time.Hour, Format: "csv", Tuning: workflows.Tuning{HeartbeatTimeout: 10 * time.Second, Concurrency: 4}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"since":"2026-11-01T00:00:00Z"`, `"window":"6h0m0s"`, `"format":"csv"`, `"heartbeatTimeout":"10s"`, `"concurrency":4`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back workflows.BackfillInput
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, in) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	pasted := `{"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z", "step": "6h"}`
	var rin workflows.ReconcileInput
	if err := json.Unmarshal([]byte(pasted), &rin); err != nil || rin.Step != 6*time.Hour {
		t.Fatalf("pasted reconcile input: %+v %v", rin, err)
	}
	err = json.Unmarshal([]byte(`{"since": "2026-11-01T00:00:00Z", "window": "6 hours"}`), &back)
	if err == nil || !strings.Contains(err.Error(), `input field "window": duration "6 hours"`) {
		t.Fatalf("bad duration: %v", err)
	}
}
