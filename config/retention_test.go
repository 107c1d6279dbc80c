package config_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/ktpipe/ktpipe/config"
)

func TestStagingRetention(t *testing.T) {
	for value, want := range map[string]time.Duration{"": 7 * 24 * time.Hour, "3d": 72 * time.Hour, "36h": 36 * time.Hour} {
		env := base()
		if value != "" {
			env["KTPIPE_STAGING_RETENTION"] = value
		}
		var c config.Pipeline
		if err := config.Load(context.Background(), &c, envconfig.MapLookuper(env)); err != nil {
			t.Fatalf("%q: %v", value, err)
		}
		if got := time.Duration(c.StagingRetention); got != want {
			t.Errorf("%q: retention %s, want %s", value, got, want)
		}
	}
	for value, want := range map[string]string{"12h": "must be at least 24h", "a week": "must be whole days", "1.5d": "must be whole days"} {
		env := base()
		env["KTPIPE_STAGING_RETENTION"] = value
		var c config.Pipeline
		err := config.Load(context.Background(), &c, envconfig.MapLookuper(env))
		if err == nil || !strings.Contains(err.Error(), "KTPIPE_STAGING_RETENTION") || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want KTPIPE_STAGING_RETENTION and %q", value, err, want)
		}
	}
}
