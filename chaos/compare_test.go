package chaos

import (
	"strings"
	"testing"

	"github.com/ktpipe/ktpipe/ktsim"
)

func TestCompare(t *testing.T) {
	long := strings.Repeat("x", 80)
	truth := ktsim.Truth{
		Valid:   []string{"a", "b", "c"},
		Invalid: []ktsim.InvalidRecord{{ID: "bad1", Rule: "bad_id"}, {ID: long, Rule: "bad_id"}},
	}
	quarantined := map[string][]string{"bad1": {"id: bad_id"}, long[:64]: {"id: bad_id"}}
	for _, tc := range []struct {
		name  string
		fact  map[string]int
		q     map[string][]string
		truth ktsim.Truth
		want  []string // a substring of each problem, in order
	}{
		{"exactly once", map[string]int{"a": 1, "b": 1, "c": 1}, quarantined, truth, nil},
		{"missing", map[string]int{"a": 1, "b": 1}, quarantined, truth, []string{"1 valid events missing from fact_ai_event: c"}},
		{"doubled", map[string]int{"a": 1, "b": 2, "c": 1}, quarantined, truth, []string{"more than once in fact_ai_event: b×2"}},
		{"extra", map[string]int{"a": 1, "b": 1, "c": 1, "z": 1}, quarantined, truth, []string{"no valid event: z×1"}},
		{"invalid in fact", map[string]int{"a": 1, "b": 1, "c": 1, "bad1": 1}, quarantined, truth, []string{"no valid event: bad1×1"}},
		{"not quarantined", map[string]int{"a": 1, "b": 1, "c": 1}, map[string][]string{"bad1": {"id: bad_id"}}, truth, []string{"not quarantined exactly once: " + long + " (bad_id)×0"}},
		{"quarantined twice", map[string]int{"a": 1, "b": 1, "c": 1}, map[string][]string{"bad1": {"x", "y"}, long[:64]: {"x"}}, truth, []string{"bad1 (bad_id)×2"}},
		{"degenerate", map[string]int{}, nil, ktsim.Truth{}, []string{"degenerate truth: 0 valid, 0 invalid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Compare(tc.truth, tc.fact, tc.q)
			got := c.Problems()
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %q, want it to contain %q", got[i], w)
				}
			}
			if c.OK() != (len(tc.want) == 0) {
				t.Errorf("OK() = %v with problems %q", c.OK(), got)
			}
		})
	}
}
