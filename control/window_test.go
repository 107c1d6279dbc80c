package control

import (
	"testing"
	"time"
)

// TestWindowAlignsSinceNotAnExplicitUntil: --since is truncated to its
// hour and the default --until is the next whole hour, but an explicit
// --until is kept to the second (window's doc says so).
func TestWindowAlignsSinceNotAnExplicitUntil(t *testing.T) {
	now := time.Date(2026, 11, 29, 14, 25, 7, 0, time.UTC)
	for _, tc := range []struct {
		since, until string
		wantS, wantU time.Time
	}{
		{"2h", "", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 29, 15, 0, 0, 0, time.UTC)},
		{"2026-11-29T10:30:00Z", "2026-11-29T13:45:30Z", time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 29, 13, 45, 30, 0, time.UTC)},
	} {
		s, u, err := window(tc.since, tc.until, now)
		if err != nil || !s.Equal(tc.wantS) || !u.Equal(tc.wantU) {
			t.Errorf("window(%q, %q) = %s, %s, %v; want %s, %s", tc.since, tc.until, s, u, err, tc.wantS, tc.wantU)
		}
	}
}
