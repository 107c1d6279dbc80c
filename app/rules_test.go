package app_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// TestConfigRulesMatchTheDomains: config checks a variable by its own
// rule, so it imports none of the packages that use the value; each rule
// must accept exactly what that package accepts, or a value config lets
// through fails later, in the middle of a load.
func TestConfigRulesMatchTheDomains(t *testing.T) {
	accepts := func(key, value string, target any) bool {
		env := map[string]string{"BIGQUERY_PROJECT": "kt-project", key: value}
		return config.Load(context.Background(), target, envconfig.MapLookuper(env)) == nil
	}
	for _, p := range []string{"kt-project", "my-project-123", "example.com:my-project", "abcdef", "abcde", "Kt-project",
		"1kt-project", "kt-project-", "kt_project", strings.Repeat("a", 30), strings.Repeat("a", 31), "kt-project; drop"} {
		if got, want := accepts("BIGQUERY_PROJECT", p, &config.BigQuery{}), warehouse.ValidateProject(p) == nil; got != want {
			t.Errorf("BIGQUERY_PROJECT %q: config accepts %v, warehouse %v", p, got, want)
		}
	}
	for _, d := range []string{"keeptrusts", "_kt", "Kt_2", "kt-events", "2kt", "kt.events", "kt events", "`kt`",
		strings.Repeat("a", 1024), strings.Repeat("a", 1025)} {
		if got, want := accepts("BIGQUERY_DATASET", d, &config.BigQuery{}), warehouse.ValidateDataset(d) == nil; got != want {
			t.Errorf("BIGQUERY_DATASET %q: config accepts %v, warehouse %v", d, got, want)
		}
	}
	for _, p := range []string{"ktpipe", "a/b", "a.b-c_d", "../x", "a/../b", "a//b", "/a", ".a", "a b", "a..b"} {
		if got, want := accepts("KTPIPE_STAGING_PREFIX", p+"/", &config.Pipeline{}), staging.CheckKey(p) == nil; got != want {
			t.Errorf("KTPIPE_STAGING_PREFIX %q: config accepts %v, staging %v", p+"/", got, want)
		}
	}
	for _, f := range []string{"ndjson", "json", "csv", "xml", "NDJSON", "jsonl"} {
		_, err := schemas.ParseFormat(f)
		if got, want := accepts("KTPIPE_EXPORT_FORMAT", f, &config.Pipeline{}), err == nil; got != want {
			t.Errorf("KTPIPE_EXPORT_FORMAT %q: config accepts %v, schemas %v", f, got, want)
		}
	}
}
