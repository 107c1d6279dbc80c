package config_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/ktpipe/ktpipe/config"
)

// `worker webhook` needs Temporal, staging and the receiver only: it
// starts without BIGQUERY_PROJECT or the Keeptrusts API settings, and
// not without an address to serve.
func TestReceiverNeedsNeitherBigQueryNorTheAPI(t *testing.T) {
	env := map[string]string{"KTPIPE_WEBHOOK_ADDR": "127.0.0.1:8088", "KEEPTRUSTS_WEBHOOK_SECRET": "whsec"}
	var c config.Receiver
	if err := config.Load(context.Background(), &c, envconfig.MapLookuper(env)); err != nil {
		t.Fatal(err)
	}
	if c.Webhook.MaxBody != 8<<20 || c.Webhook.MaxInFlight != 64 || c.Webhook.MaxInFlightBytes != 0 || c.Webhook.ReadTimeout.String() != "10s" || c.Webhook.Live.String() != "2s" {
		t.Fatalf("receiver defaults %+v", c.Webhook)
	}
	tests := []struct{ key, value, want string }{
		{"KTPIPE_WEBHOOK_ADDR", "", "KTPIPE_WEBHOOK_ADDR: missing required value"},
		{"KEEPTRUSTS_WEBHOOK_SECRET", "", "KEEPTRUSTS_WEBHOOK_SECRET: missing required value"},
		{"KTPIPE_WEBHOOK_MAX_BODY", "100", "KTPIPE_WEBHOOK_MAX_BODY: 100 must be between"},
		{"KTPIPE_WEBHOOK_MAX_IN_FLIGHT", "0", "KTPIPE_WEBHOOK_MAX_IN_FLIGHT: 0 must be between"},
		{"KTPIPE_WEBHOOK_MAX_IN_FLIGHT_BYTES", "1000000", "KTPIPE_WEBHOOK_MAX_IN_FLIGHT_BYTES: 1000000 must be 0 (32 MiB, or the max body if larger) or between KTPIPE_WEBHOOK_MAX_BODY (8388608"},
		{"KTPIPE_WEBHOOK_READ_TIMEOUT", "1h", "KTPIPE_WEBHOOK_READ_TIMEOUT: 1h0m0s must be between"},
		{"KTPIPE_WEBHOOK_BATCH", "2h", "KTPIPE_WEBHOOK_BATCH: 2h0m0s must be between 1s and 1h"},
		{"KTPIPE_WEBHOOK_LIVE", "100ms", "KTPIPE_WEBHOOK_LIVE: 100ms must be 0 (off) or between 500ms and 10m"},
		{"KTPIPE_WEBHOOK_LIVE", "1h", "KTPIPE_WEBHOOK_LIVE: 1h0m0s must be 0 (off) or between"},
	}
	for _, tt := range tests {
		bad := map[string]string{}
		for k, v := range env {
			bad[k] = v
		}
		bad[tt.key] = tt.value
		var c config.Receiver
		err := config.Load(context.Background(), &c, envconfig.MapLookuper(bad))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s=%q: %v, want %q", tt.key, tt.value, err, tt.want)
		}
	}
}

// KTPIPE_WEBHOOK_LIVE_ONLY needs the compaction and a live landing, in a
// receiver and in a worker that serves webhooks.
func TestLiveOnlyWebhooksNeedTheCompactionAndTheLiveView(t *testing.T) {
	base := map[string]string{"KTPIPE_WEBHOOK_ADDR": "127.0.0.1:8088", "KEEPTRUSTS_WEBHOOK_SECRET": "whsec",
		"KTPIPE_WEBHOOK_LIVE_ONLY": "true", "KTPIPE_COMPACT_EVERY": "1h",
		"BIGQUERY_PROJECT": "ktpipe-test", "KEEPTRUSTS_API_TOKEN": "t", "KEEPTRUSTS_BASE_URL": "https://api.example.com"}
	tests := []struct{ key, value, want string }{
		{"", "", ""},
		{"KTPIPE_COMPACT_EVERY", "0", "KTPIPE_WEBHOOK_LIVE_ONLY: needs KTPIPE_COMPACT_EVERY"},
		{"KTPIPE_WEBHOOK_LIVE", "0", "KTPIPE_WEBHOOK_LIVE_ONLY: needs KTPIPE_WEBHOOK_LIVE above 0"},
		{"KTPIPE_SCHEDULE_INTERVAL", "2h", "KTPIPE_WEBHOOK_LIVE_ONLY: needs KTPIPE_SCHEDULE_INTERVAL of 1h at most, not 2h0m0s"},
	}
	for _, tt := range tests {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		if tt.key != "" {
			env[tt.key] = tt.value
		}
		for _, c := range []any{&config.Receiver{}, &config.Worker{}} {
			err := config.Load(context.Background(), c, envconfig.MapLookuper(env))
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)) {
				t.Errorf("%T with %s=%q: %v, want %q", c, tt.key, tt.value, err, tt.want)
			}
		}
	}
	var c config.Receiver
	if err := config.Load(context.Background(), &c, envconfig.MapLookuper(base)); err != nil || !c.Webhook.LiveOnly {
		t.Errorf("LiveOnly %v, err %v", c.Webhook.LiveOnly, err)
	}
	// A worker that serves no webhooks keeps the view's window for the
	// receivers that do: it is checked all the same.
	delete(base, "KTPIPE_WEBHOOK_ADDR")
	base["KTPIPE_COMPACT_EVERY"] = "0"
	var w config.Worker
	if err := config.Load(context.Background(), &w, envconfig.MapLookuper(base)); err == nil || !strings.HasPrefix(err.Error(), "KTPIPE_WEBHOOK_LIVE_ONLY: needs KTPIPE_COMPACT_EVERY") {
		t.Errorf("a worker without a receiver, live only and no compaction: %v", err)
	}
}
