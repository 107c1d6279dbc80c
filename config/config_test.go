package config_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/warehouse"
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
	if c.Temporal.TaskQueue != "ktpipe" || c.Pipeline.ChunkRows != 50000 || c.Pipeline.ScheduleInterval != time.Hour ||
		c.Pipeline.MaxRecordBytes != 1<<20 || c.Pipeline.MaxInflateRatio != 100 {
		t.Fatalf("defaults %+v", c)
	}
	// The README states these; the client's own defaults are the same.
	k := c.Keeptrusts
	if k.ConnectTimeout != keeptrusts.DefaultConnectTimeout || k.ResponseTimeout != keeptrusts.DefaultResponseTimeout ||
		k.IdleReadTimeout != keeptrusts.DefaultIdleReadTimeout || k.CallTimeout != keeptrusts.DefaultCallTimeout ||
		k.MaxResponseBytes != keeptrusts.DefaultMaxBodyBytes || k.AllowInsecureHTTP {
		t.Fatalf("keeptrusts defaults %+v", k)
	}
}

// KTPIPE_CHUNK_ROWS' upper bound is the warehouse's: config spells it
// out (it imports no ktpipe package), this holds the two together.
func TestChunkRowsBoundIsTheWarehouses(t *testing.T) {
	for n, ok := range map[int]bool{warehouse.MaxChunkRows: true, warehouse.MaxChunkRows + 1: false} {
		env := base()
		env["KTPIPE_CHUNK_ROWS"] = strconv.Itoa(n)
		var c config.Worker
		if err := config.Load(context.Background(), &c, envconfig.MapLookuper(env)); ok != (err == nil) {
			t.Errorf("KTPIPE_CHUNK_ROWS=%d: err %v, want ok=%v", n, err, ok)
		}
	}
}

// KTPIPE_MAX_DIM_USERS' default is the warehouse's MaxDimUsers.
func TestMaxDimUsersDefaultIsTheWarehouses(t *testing.T) {
	var c config.Worker
	if err := config.Load(context.Background(), &c, envconfig.MapLookuper(base())); err != nil || c.Pipeline.MaxDimUsers != warehouse.MaxDimUsers {
		t.Errorf("KTPIPE_MAX_DIM_USERS default %d (%v), want warehouse.MaxDimUsers %d", c.Pipeline.MaxDimUsers, err, warehouse.MaxDimUsers)
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
		{"plain http off loopback", "KEEPTRUSTS_BASE_URL", "http://api.keeptrusts.com", "KEEPTRUSTS_BASE_URL: \"http://api.keeptrusts.com\" must use https"},
		{"plain http on a private address", "KEEPTRUSTS_BASE_URL", "http://10.0.0.5:8787", "KEEPTRUSTS_BASE_URL: \"http://10.0.0.5:8787\" must use https"},
		{"plain http on a name that looks local", "KEEPTRUSTS_BASE_URL", "http://localhost.evil.example", "must use https"},
		{"idle read too short", "KEEPTRUSTS_IDLE_READ_TIMEOUT", "10ms", "KEEPTRUSTS_IDLE_READ_TIMEOUT: 10ms must be between 1s and 1h"},
		{"call timeout not a duration", "KEEPTRUSTS_CALL_TIMEOUT", "long", "KEEPTRUSTS_CALL_TIMEOUT: invalid value"},
		{"response cap too small", "KEEPTRUSTS_MAX_RESPONSE_BYTES", "1000", "KEEPTRUSTS_MAX_RESPONSE_BYTES: 1000 must be between 1048576 (1 MiB)"},
		{"response cap that overflows", "KEEPTRUSTS_MAX_RESPONSE_BYTES", "9223372036854775807", "KEEPTRUSTS_MAX_RESPONSE_BYTES: 9223372036854775807 must be between"},
		{"token set but blank", "KEEPTRUSTS_API_TOKEN", "  ", "KEEPTRUSTS_API_TOKEN: must not be empty"},
		{"token from a file with its newline", "KEEPTRUSTS_API_TOKEN", "tok-very-secret\n", "KEEPTRUSTS_API_TOKEN: contains a control character"},
		{"token with CR LF", "KEEPTRUSTS_API_TOKEN", "tok-very-secret\r\n", "KEEPTRUSTS_API_TOKEN: contains a control character"},
		{"token with NUL", "KEEPTRUSTS_API_TOKEN", "tok-very-\x00secret", "KEEPTRUSTS_API_TOKEN: contains a control character"},
		{"token with a trailing space", "KEEPTRUSTS_API_TOKEN", "tok-very-secret ", "KEEPTRUSTS_API_TOKEN: has leading or trailing whitespace"},
		{"token with a leading tab", "KEEPTRUSTS_API_TOKEN", "\ttok-very-secret", "KEEPTRUSTS_API_TOKEN: has leading or trailing whitespace"},
		{"rate limit not a number", "KEEPTRUSTS_RATE_LIMIT", "NaN", "KEEPTRUSTS_RATE_LIMIT: NaN must be a number > 0"},
		{"rate limit infinite", "KEEPTRUSTS_RATE_LIMIT", "+Inf", "KEEPTRUSTS_RATE_LIMIT: +Inf must be a number > 0"},
		{"batches without bound", "KTPIPE_BATCHES_PER_RUN", "2000000000", "KTPIPE_BATCHES_PER_RUN: must be between 1 and 1000"},
		{"dim_user past what a refresh may hold", "KTPIPE_MAX_DIM_USERS", "100000000", "KTPIPE_MAX_DIM_USERS: must be between 1000 and 50000000"},
		{"dim_user too small", "KTPIPE_MAX_DIM_USERS", "999", "KTPIPE_MAX_DIM_USERS: must be between 1000 and 50000000"},
		{"start that overflows", "KTPIPE_PULL_START", "300000d", "KTPIPE_PULL_START"},
		{"bad dataset", "BIGQUERY_DATASET", "kt-events", "BIGQUERY_DATASET: dataset \"kt-events\""},
		{"bad format", "KTPIPE_EXPORT_FORMAT", "xml", "KTPIPE_EXPORT_FORMAT"},
		{"bad start", "KTPIPE_PULL_START", "yesterday", "KTPIPE_PULL_START"},
		{"bucket url", "KTPIPE_STAGING_BUCKET", "gs://my-bucket", "KTPIPE_STAGING_BUCKET: \"gs://my-bucket\" is not a bucket name"},
		{"prefix without slash", "KTPIPE_STAGING_PREFIX", "ktpipe", "KTPIPE_STAGING_PREFIX"},
		{"webhooks without secret", "KTPIPE_WEBHOOK_ADDR", ":8088", "KEEPTRUSTS_WEBHOOK_SECRET: missing required value"},
		{"late window too short", "KTPIPE_LATE_WINDOW", "10s", "KTPIPE_LATE_WINDOW: must be at least 1m"},
		{"compaction too often", "KTPIPE_COMPACT_EVERY", "1m", "KTPIPE_COMPACT_EVERY: must be 0 (off) or between 5m and 4h"},
		{"compaction past the live view", "KTPIPE_COMPACT_EVERY", "5h", "KTPIPE_COMPACT_EVERY: must be 0 (off) or between 5m and 4h"},
		{"missing certificate", "TEMPORAL_TLS_CLIENT_CERT_PATH", "/nonexistent/client.pem", "TEMPORAL_TLS_CLIENT_CERT_PATH: stat /nonexistent/client.pem"},
		{"tls not a bool", "TEMPORAL_TLS", "yes", "TEMPORAL_TLS: \"yes\" must be true or false"},
		{"address without port", "TEMPORAL_ADDRESS", "temporal", "TEMPORAL_ADDRESS: \"temporal\" must be host:port"},
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

func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://api.keeptrusts.com": true, "https://10.0.0.5:8443": true,
		"http://127.0.0.1:8787": true, "http://127.3.4.5": true, "http://[::1]:8787": true, "http://localhost:8787": true, "http://LOCALHOST": true,
		"http://api.keeptrusts.com": false, "http://10.0.0.5": false, "http://[::2]:80": false, "http://0.0.0.0:8787": false,
	} {
		env := base()
		env["KEEPTRUSTS_BASE_URL"] = url
		var c config.Worker
		err := config.Load(context.Background(), &c, envconfig.MapLookuper(env))
		if ok != (err == nil) {
			t.Errorf("%s: err %v, want ok=%v", url, err, ok)
		}
	}
	env := base()
	env["KEEPTRUSTS_BASE_URL"], env["KEEPTRUSTS_ALLOW_INSECURE_HTTP"] = "http://ktsim:8787", "true"
	var c config.Worker
	if err := config.Load(context.Background(), &c, envconfig.MapLookuper(env)); err != nil {
		t.Errorf("explicitly allowed plain http: %v", err)
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

// The compaction's interval: off by default, on within its bounds.
func TestCompactEvery(t *testing.T) {
	for value, want := range map[string]time.Duration{"": 0, "0": 0, "5m": 5 * time.Minute, "4h": 4 * time.Hour} {
		env := base()
		if value != "" {
			env["KTPIPE_COMPACT_EVERY"] = value
		}
		var c config.Worker
		if err := config.Load(context.Background(), &c, envconfig.MapLookuper(env)); err != nil || c.Pipeline.CompactEvery != want {
			t.Errorf("%q: %v %v, want %v", value, c.Pipeline.CompactEvery, err, want)
		}
	}
}

// A webhook secret with whitespace at either end would refuse every
// delivery: refused at start, naming the variable, not the secret.
func TestWebhookSecretWithWhitespaceIsRefused(t *testing.T) {
	for _, secret := range []string{"whsec-very-secret\n", " whsec-very-secret", "   "} {
		env := base()
		env["KTPIPE_WEBHOOK_ADDR"], env["KEEPTRUSTS_WEBHOOK_SECRET"] = ":8088", secret
		var c config.Worker
		err := config.Load(context.Background(), &c, envconfig.MapLookuper(env))
		if err == nil || !strings.Contains(err.Error(), "KEEPTRUSTS_WEBHOOK_SECRET: has leading or trailing whitespace") || strings.Contains(err.Error(), "very-secret") {
			t.Errorf("secret %q: %v, want it refused naming the variable only", secret, err)
		}
	}
}
