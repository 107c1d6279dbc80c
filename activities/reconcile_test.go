package activities

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/payload"
)

// group_by's hour is "0-23" in the contract, which gives its rows no
// schema: a server may send it as a number or as its digits.
func TestCountSourceByWindowReadsTheHourEitherWay(t *testing.T) {
	since := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for _, hour := range []string{`3`, `"3"`} {
		api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `[{"date":"2026-11-26","hour":%s,"requests":7}]`, hour)
		}))
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		a := &Activities{API: api}
		env.RegisterActivity(a)
		v, err := env.ExecuteActivity(a.CountSourceByWindow, payload.Steps{Since: since, Until: since.Add(6 * time.Hour), Step: time.Hour})
		if err != nil {
			t.Fatalf("hour %s: %v", hour, err)
		}
		var got []int64
		if err := v.Get(&got); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[0 0 0 7 0 0]" {
			t.Errorf("hour %s: counts %v, want 7 in the fourth hour", hour, got)
		}
	}
	// Not an hour at all: refused, naming what it got.
	api := apiClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"date":"2026-11-26","hour":"three","requests":7}]`)
	}))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{API: api}
	env.RegisterActivity(a)
	if _, err := env.ExecuteActivity(a.CountSourceByWindow, payload.Steps{Since: since, Until: since.Add(6 * time.Hour), Step: time.Hour}); err == nil {
		t.Error(`hour "three" accepted`)
	}
}
