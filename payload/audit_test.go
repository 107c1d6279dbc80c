package payload_test

import (
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/payload"
)

// Sum adds the window's hours when the counts hold each of them, whole.
func TestHourCountsSumTheWindowsHours(t *testing.T) {
	start := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	h := payload.HourCounts{Since: start, Counts: []int64{1, 2, 4, 8, 16}}
	at := func(hours float64) time.Time { return start.Add(time.Duration(hours * float64(time.Hour))) }
	for _, tc := range []struct {
		name     string
		w        payload.Window
		sum      int64
		complete bool
	}{
		{"the first three hours", payload.Window{Since: at(0), Until: at(3)}, 7, true},
		{"the last three", payload.Window{Since: at(2), Until: at(5)}, 28, true},
		{"one hour", payload.Window{Since: at(4), Until: at(5)}, 16, true},
		{"before them", payload.Window{Since: at(-1), Until: at(2)}, 0, false},
		{"past them", payload.Window{Since: at(3), Until: at(6)}, 0, false},
		{"a part of an hour", payload.Window{Since: at(0.5), Until: at(2)}, 0, false},
		{"empty", payload.Window{Since: at(1), Until: at(1)}, 0, false},
	} {
		if n, ok := h.Sum(tc.w); n != tc.sum || ok != tc.complete {
			t.Errorf("%s: %d %t, want %d %t", tc.name, n, ok, tc.sum, tc.complete)
		}
	}
	if _, ok := (payload.HourCounts{}).Sum(payload.Window{Since: start, Until: at(1)}); ok {
		t.Error("no counts: summed")
	}
}

// A count by window takes at most a day, in steps of whole minutes.
func TestCheckCountSteps(t *testing.T) {
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		s    payload.Steps
		ok   bool
	}{
		{"a day of hours", payload.Steps{Since: day, Until: day.Add(24 * time.Hour), Step: time.Hour}, true},
		{"a day of minutes", payload.Steps{Since: day, Until: day.Add(24 * time.Hour), Step: time.Minute}, true},
		{"more than a day", payload.Steps{Since: day, Until: day.Add(25 * time.Hour), Step: time.Hour}, false},
		{"a nanosecond step", payload.Steps{Since: day, Until: day.Add(time.Hour), Step: time.Nanosecond}, false},
		{"a step in parts of minutes", payload.Steps{Since: day, Until: day.Add(time.Hour), Step: 90 * time.Second}, false},
		{"no step", payload.Steps{Since: day, Until: day.Add(time.Hour)}, false},
		{"an empty range", payload.Steps{Since: day, Until: day, Step: time.Hour}, false},
	} {
		if err := payload.CheckCountSteps(tc.s); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %t", tc.name, err, tc.ok)
		}
	}
}
