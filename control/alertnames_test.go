package control

import (
	"os"
	"regexp"
	"testing"
)

// Status names each condition as the Prometheus rules name its alert, so
// an operator finds the same name in both; KtpipeScheduleMissing is
// status's own (Prometheus cannot see a schedule).
func TestStatusAlertsAreNamedAsTheRules(t *testing.T) {
	src, err := os.ReadFile("status.go")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("../ops/prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	ruleNames := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllSubmatch(rules, -1) {
		ruleNames[string(m[1])] = true
	}
	names := regexp.MustCompile(`alert\("(Ktpipe\w+)"`).FindAllSubmatch(src, -1)
	if len(names) < 8 {
		t.Fatalf("found %d alert names in status.go; the pattern no longer matches how status raises them", len(names))
	}
	for _, m := range names {
		if n := string(m[1]); !ruleNames[n] && n != "KtpipeScheduleMissing" {
			t.Errorf("status raises %s, which ops/prometheus/rules.yml does not define", n)
		}
	}
}
