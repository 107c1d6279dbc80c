package keeptrusts_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/ktsim"
)

// ParseSignature decides from the header alone, so a receiver refuses
// before reading the body; its errors never echo the header.
func TestParseSignatureRefusesFromTheHeaderAlone(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v1 := strings.Repeat("ab", 32)
	tests := []struct {
		name, header string
		ok           bool
	}{
		{"valid", fmt.Sprintf("t=%d,v1=%s", now.Unix(), v1), true},
		{"two v1 (a rotated secret)", fmt.Sprintf("t=%d,v1=%s,v1=%s", now.Unix(), v1, v1), true},
		{"unknown scheme kept aside", fmt.Sprintf("t=%d,v0=x,v1=%s", now.Unix(), v1), true},
		{"empty", "", false},
		{"no t", "v1=" + v1, false},
		{"t twice", fmt.Sprintf("t=%d,t=%d,v1=%s", now.Unix(), now.Unix(), v1), false},
		{"t not a number", "t=now,v1=" + v1, false},
		{"negative t", "t=-5,v1=" + v1, false},
		{"v1 too short", fmt.Sprintf("t=%d,v1=abcd", now.Unix()), false},
		{"v1 not hex", fmt.Sprintf("t=%d,v1=%s", now.Unix(), strings.Repeat("zz", 32)), false},
		{"too many v1", fmt.Sprintf("t=%d", now.Unix()) + strings.Repeat(",v1="+v1, 9), false},
		{"too long", fmt.Sprintf("t=%d,v1=%s,", now.Unix(), v1) + strings.Repeat("x", 2000), false},
		{"too old", fmt.Sprintf("t=%d,v1=%s", now.Add(-301*time.Second).Unix(), v1), false},
		{"too new", fmt.Sprintf("t=%d,v1=%s", now.Add(301*time.Second).Unix(), v1), false},
	}
	for _, tt := range tests {
		_, err := keeptrusts.ParseSignature(tt.header, now)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, keeptrusts.ErrBadSignature)) {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), v1[:8]) {
			t.Errorf("%s: the error echoes the header: %v", tt.name, err)
		}
	}
	body := []byte(`{"type":"events.batch","events":[]}`)
	s, err := keeptrusts.ParseSignature(ktsim.Sign("sec", now, body), now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Verify("sec", body) != nil || s.Verify("sec", append(body, ' ')) == nil || s.Verify("other", body) == nil {
		t.Fatal("Verify does not check the body and the secret")
	}
}
