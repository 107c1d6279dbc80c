package keeptrusts

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureTolerance is how far a delivery's t may be from the receiver's
// clock (the contract: 300 s).
const SignatureTolerance = 300 * time.Second

// ErrBadSignature is returned for a delivery whose signature does not
// verify; a receiver answers it with 401.
var ErrBadSignature = errors.New("webhook signature does not verify")

// VerifySignature checks a Keeptrusts-Signature header ("t=<unix>,v1=<hex>")
// over the raw body. The error never contains the secret.
func VerifySignature(secret Secret, header string, body []byte, now time.Time) error {
	var ts int64
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: bad t", ErrBadSignature)
			}
			ts = n
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if ts == 0 || len(sigs) == 0 {
		return fmt.Errorf("%w: header must carry t and v1", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > SignatureTolerance || d < -SignatureTolerance {
		return fmt.Errorf("%w: t is %s from now", ErrBadSignature, d.Round(time.Second))
	}
	mac := hmac.New(sha256.New, []byte(secret.Reveal()))
	fmt.Fprintf(mac, "%d.", ts)
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}
