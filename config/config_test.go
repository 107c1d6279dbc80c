package config_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/ktpipe/ktpipe/config"
)

func base() map[string]string {
	return map[string]string{
		"KEEPTRUSTS_BASE_URL":  "http://127.0.0.1:8787",
		"KEEPTRUSTS_API_TOKEN": "tok-very-secret",
		"BIGQUERY_PROJECT":     "my-project",
	}
}

func TestDefaultsAreValid(t *testing.T) {
	var c config.Worker
	if err := config.Load(context.Background(), &c, envconfig.MapLookuper(base())); err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Address != "127.0.0.1:7233" || c.Pipeline.ChunkRows != 50000 || c.Pipeline.ScheduleInterval != time.Hour ||
		c.Pipeline.MaxRecordBytes != 1<<20 || c.Pipeline.MaxInflateRatio != 100 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"missing token", "KEEPTRUSTS_API_TOKEN", "", "KEEPTRUSTS_API_TOKEN: missing required value"},
		{"missing project", "BIGQUERY_PROJECT", "", "BIGQUERY_PROJECT: missing required value"},
		{"not a number", "KTPIPE_CHUNK_ROWS", "lots", "KTPIPE_CHUNK_ROWS: invalid value"},
		{"not a duration", "KTPIPE_SCHEDULE_INTERVAL", "hourly", "KTPIPE_SCHEDULE_INTERVAL: invalid value"},
		{"out of range", "KTPIPE_PAGE_SIZE", "20000", "KTPIPE_PAGE_SIZE: must be between 1 and 10000"},
		{"record cap too small", "KTPIPE_MAX_RECORD_BYTES", "100", "KTPIPE_MAX_RECORD_BYTES: must be between 1024"},
		{"inflate ratio zero", "KTPIPE_MAX_INFLATE_RATIO", "0", "KTPIPE_MAX_INFLATE_RATIO: must be between 1 and 1000"},
		{"bad url", "KEEPTRUSTS_BASE_URL", "ftp:/x", "KEEPTRUSTS_BASE_URL"},
		{"bad dataset", "BIGQUERY_DATASET", "kt-events", "BIGQUERY_DATASET: dataset \"kt-events\""},
		{"bad format", "KTPIPE_EXPORT_FORMAT", "xml", "KTPIPE_EXPORT_FORMAT"},
		{"bad start", "KTPIPE_PULL_START", "yesterday", "KTPIPE_PULL_START"},
		{"bucket url", "KTPIPE_STAGING_BUCKET", "gs://my-bucket", "KTPIPE_STAGING_BUCKET: \"gs://my-bucket\" is not a bucket name"},
		{"prefix without slash", "KTPIPE_STAGING_PREFIX", "ktpipe", "KTPIPE_STAGING_PREFIX"},
		{"webhooks without secret", "KTPIPE_WEBHOOK_ADDR", ":8088", "KEEPTRUSTS_WEBHOOK_SECRET: missing required value"},
		{"late window too short", "KTPIPE_LATE_WINDOW", "10s", "KTPIPE_LATE_WINDOW: must be at least 1m"},
		{"half tls", "TEMPORAL_TLS_CERT", "/etc/hosts", "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := base()
			if tt.value == "" {
				delete(env, tt.key)
			} else {
				env[tt.key] = tt.value
			}
			var c config.Worker
			err := config.Load(context.Background(), &c, envconfig.MapLookuper(env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "tok-very-secret") {
				t.Fatal("error leaks the token")
			}
		})
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	var c config.Worker
	if err := config.Load(context.Background(), &c, envconfig.MapLookuper(base())); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmtV(c), fmtPlusV(c), fmtGo(c)} {
		if strings.Contains(s, "tok-very-secret") {
			t.Fatalf("config prints the token: %s", s)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"30m": now.Add(-30 * time.Minute), "24h": now.Add(-24 * time.Hour), "2d": now.Add(-48 * time.Hour),
		"2026-11-01T00:00:00+01:00": time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC),
	} {
		if got, err := config.ParseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("ParseSince(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "5", "5w", "-5m", "1.5h"} {
		if _, err := config.ParseSince(bad, now); err == nil {
			t.Errorf("ParseSince(%q) accepted", bad)
		}
	}
}
