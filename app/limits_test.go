package app_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/sethvargo/go-envconfig"
	"google.golang.org/api/option"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/warehouse"
)

// KTPIPE_MAX_RECORD_BYTES and KTPIPE_MAX_INFLATE_RATIO reach the
// activities' decoders.
func TestDecoderLimitsReachTheActivities(t *testing.T) {
	ctx := context.Background()
	var cfg config.Worker
	env := map[string]string{"KEEPTRUSTS_API_TOKEN": "tok", "KEEPTRUSTS_BASE_URL": "http://127.0.0.1:9", "BIGQUERY_PROJECT": "kt-project",
		"KTPIPE_MAX_RECORD_BYTES": "4096", "KTPIPE_MAX_INFLATE_RATIO": "7", "KTPIPE_STAGING_DIR": t.TempDir()}
	if err := config.Load(ctx, &cfg, envconfig.MapLookuper(env)); err != nil {
		t.Fatal(err)
	}
	bq, err := bigquery.NewClient(ctx, "kt-project", option.WithEndpoint("http://127.0.0.1:9"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer bq.Close()
	acts, err := app.NewActivities(cfg, bq, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (schemas.Limits{MaxRecordBytes: 4096, MaxInflateRatio: 7}); acts.Limits != want {
		t.Fatalf("activities' limits %+v, want %+v", acts.Limits, want)
	}
}

// The live view's window: the default, the compaction's interval and an
// hour, and its longest with live-only webhooks.
func TestLiveWindowFollowsTheConfiguration(t *testing.T) {
	base := map[string]string{"KEEPTRUSTS_API_TOKEN": "tok", "KEEPTRUSTS_BASE_URL": "http://127.0.0.1:9", "BIGQUERY_PROJECT": "kt-project"}
	for _, tt := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{nil, 0},
		{map[string]string{"KTPIPE_COMPACT_EVERY": "1h"}, 2 * time.Hour},
		{map[string]string{"KTPIPE_COMPACT_EVERY": "1h", "KTPIPE_WEBHOOK_LIVE_ONLY": "true"}, warehouse.MaxLiveWindow},
	} {
		env := maps.Clone(base)
		maps.Copy(env, tt.env)
		var cfg config.Worker
		if err := config.Load(context.Background(), &cfg, envconfig.MapLookuper(env)); err != nil {
			t.Fatal(err)
		}
		if got := app.LiveWindow(cfg); got != tt.want {
			t.Errorf("%v: live window %s, want %s", tt.env, got, tt.want)
		}
	}
}
