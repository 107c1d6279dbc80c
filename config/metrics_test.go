package config_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/ktpipe/ktpipe/config"
)

func TestMetricsConfig(t *testing.T) {
	var m config.Metrics
	if err := config.Load(context.Background(), &m, envconfig.MapLookuper(nil)); err != nil {
		t.Fatal(err)
	}
	if m.Addr != ":9464" || m.Refresh != 30*time.Second || m.AuditInterval != 5*time.Minute || m.ReconcileInterval != 24*time.Hour {
		t.Fatalf("defaults %+v", m)
	}
	for env, want := range map[string]string{
		"KTPIPE_AUDIT_INTERVAL":     "KTPIPE_AUDIT_INTERVAL: 30s must be between 1m and 24h",
		"KTPIPE_METRICS_REFRESH":    "KTPIPE_METRICS_REFRESH: 30s",
		"KTPIPE_RECONCILE_INTERVAL": "KTPIPE_RECONCILE_INTERVAL: 30s must be 0 (off) or at least 1h",
		"KTPIPE_METRICS_ADDR":       `KTPIPE_METRICS_ADDR: "30s" must be host:port or :port`,
	} {
		var m config.Metrics
		err := config.Load(context.Background(), &m, envconfig.MapLookuper(map[string]string{env: "30s"}))
		if want == "KTPIPE_METRICS_REFRESH: 30s" {
			if err != nil {
				t.Errorf("%s=30s: %v", env, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=30s: %v, want %q", env, err, want)
		}
	}
	if err := config.Load(context.Background(), &m, envconfig.MapLookuper(map[string]string{"KTPIPE_RECONCILE_INTERVAL": "0", "KTPIPE_METRICS_ADDR": ""})); err != nil {
		t.Errorf("reconcile off, no endpoint: %v", err)
	}
}
