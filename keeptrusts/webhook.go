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

// maxSignatureHeader bounds the Keeptrusts-Signature header a receiver
// parses: "t=<10 digits>" and a few "v1=<64 hex>" (a sender rotating its
// secret signs with both) fit in far less.
const maxSignatureHeader = 1024

// maxSignatures bounds the v1 values compared per delivery.
const maxSignatures = 8

// ErrBadSignature is returned for a delivery whose signature does not
// verify; a receiver answers it with 401.
var ErrBadSignature = errors.New("webhook signature does not verify")

// Signature is a parsed Keeptrusts-Signature header whose t is within
// SignatureTolerance: what a receiver can check before reading the body.
type Signature struct {
	t  int64
	v1 [][]byte
}

// ParseSignature reads a Keeptrusts-Signature header ("t=<unix>,v1=<hex>")
// and checks its t against now, so that a receiver refuses a missing,
// malformed or stale signature without reading the body. Errors wrap
// ErrBadSignature and never contain the header's text.
func ParseSignature(header string, now time.Time) (Signature, error) {
	if len(header) > maxSignatureHeader {
		return Signature{}, fmt.Errorf("%w: header longer than %d bytes", ErrBadSignature, maxSignatureHeader)
	}
	var s Signature
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || s.t != 0 {
				return Signature{}, fmt.Errorf("%w: t must appear once, as unix seconds", ErrBadSignature)
			}
			s.t = n
		case "v1":
			// Other schemes (and v1 values of another length) are skipped,
			// as the contract's senders may add them.
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				if len(s.v1) == maxSignatures {
					return Signature{}, fmt.Errorf("%w: more than %d v1 values", ErrBadSignature, maxSignatures)
				}
				s.v1 = append(s.v1, b)
			}
		}
	}
	if s.t == 0 || len(s.v1) == 0 {
		return Signature{}, fmt.Errorf("%w: header must carry t and a 64-hex-digit v1", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(s.t, 0)); d > SignatureTolerance || d < -SignatureTolerance {
		return Signature{}, fmt.Errorf("%w: t is %s from now, beyond the %s tolerance", ErrBadSignature, d.Round(time.Second), SignatureTolerance)
	}
	return s, nil
}

// Verify checks the signature over the raw body. The error never contains
// the secret.
func (s Signature) Verify(secret string, body []byte) error {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", s.t)
	mac.Write(body)
	want := mac.Sum(nil)
	for _, v := range s.v1 {
		if hmac.Equal(v, want) {
			return nil
		}
	}
	return ErrBadSignature
}
