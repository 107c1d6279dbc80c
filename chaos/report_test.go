package chaos

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPlanHasEveryActionOnceShuffledBySeed(t *testing.T) {
	o := Options{Kills: 20, TemporalRestarts: 1, SimRestarts: 1, FaultPhase: time.Second}
	p := plan(rand.New(rand.NewPCG(1, 2)), o)
	n := map[string]int{}
	for _, k := range p {
		n[k]++
	}
	if n[KindKill] != 20 || n[KindTemporalRestart] != 1 || n[KindAPIRestart] != 1 || n[KindFaults] != 1 || len(p) != 23 {
		t.Fatalf("plan %v", p)
	}
	if q := plan(rand.New(rand.NewPCG(1, 2)), o); !slices.Equal(p, q) {
		t.Fatal("same seed, different plan")
	}
	if q := plan(rand.New(rand.NewPCG(3, 2)), o); slices.Equal(p, q) {
		t.Fatal("another seed, same plan")
	}
	o.FaultPhase = 0
	if p := plan(rand.New(rand.NewPCG(1, 2)), o); slices.Contains(p, KindFaults) {
		t.Fatalf("no fault phase wanted: %v", p)
	}
}

func TestSummary(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		in   []time.Duration
		want string
	}{
		{nil, "n/a"},
		{[]time.Duration{3 * s}, "median 3.0s, max 3.0s (of 1)"},
		{[]time.Duration{9 * s, 1 * s, 4 * s}, "median 4.0s, max 9.0s (of 3)"},
		{[]time.Duration{9 * s, 1 * s, 4 * s, 2 * s}, "median 3.0s, max 9.0s (of 4)"},
	} {
		if got := summary(tc.in); got != tc.want {
			t.Errorf("summary(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProgressAfter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := histories{completions: []time.Time{t0, t0.Add(2 * time.Second), t0.Add(5 * time.Second)}}
	if d, ok := h.progressAfter(t0.Add(time.Second)); !ok || d != time.Second {
		t.Errorf("after t0+1s: %s %v, want 1s", d, ok)
	}
	if d, ok := h.progressAfter(t0.Add(2 * time.Second)); !ok || d != 3*time.Second {
		t.Errorf("after t0+2s: %s %v, want the next completion, 3s later", d, ok)
	}
	if _, ok := h.progressAfter(t0.Add(6 * time.Second)); ok {
		t.Error("a completion after the last one")
	}
}
