package schemas

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
)

// Decimal is an exact amount in billionths (the contract allows up to nine
// fractional digits, which is also BigQuery NUMERIC's scale). An int64 of
// billionths holds amounts up to 9.2 billion, far above any single event's
// cost, and keeps arithmetic exact without a big-number library.
type Decimal int64

// Errors of ParseDecimal; they become the rule of a FieldError.
var (
	errDecimalSyntax    = errors.New("must be a decimal like \"0.004215\"")
	errDecimalScale     = errors.New("must have at most 9 fractional digits")
	errDecimalRange     = errors.New("is out of range")
	errDecimalExpSyntax = errors.New("must be a decimal number")
)

// ParseDecimal parses the contract's decimal string ("0.004215", "-1" is
// accepted here and rejected by Validate, so the rule says why).
func ParseDecimal(s string) (Decimal, error) { return parseDecimal(s) }

// parseDecimal is ParseDecimal for text in a string or in bytes (the
// scanner's buffer, which then needs no string made of it).
func parseDecimal[T string | []byte](s T) (Decimal, error) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	dot := len(s)
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			dot = i
			break
		}
	}
	intPart, frac := s[:dot], s[min(dot+1, len(s)):]
	if len(intPart) == 0 || (dot < len(s) && len(frac) == 0) {
		return 0, errDecimalSyntax
	}
	if len(frac) > 9 {
		return 0, errDecimalScale
	}
	var n uint64
	for _, part := range [2]T{intPart, frac} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if c < '0' || c > '9' {
				return 0, errDecimalSyntax
			}
			if n > (1<<63-1)/10 {
				return 0, errDecimalRange
			}
			n = n*10 + uint64(c-'0')
		}
	}
	for i := len(frac); i < 9; i++ {
		if n > (1<<63-1)/10 {
			return 0, errDecimalRange
		}
		n *= 10
	}
	if n > 1<<63-1 {
		return 0, errDecimalRange
	}
	if neg {
		return Decimal(-int64(n)), nil
	}
	return Decimal(n), nil
}

// parseJSONNumberDecimal accepts a JSON number (the contract allows cost as
// a number too), including exponent forms, without passing through float64.
func parseJSONNumberDecimal(s string) (Decimal, error) {
	if !strings.ContainsAny(s, "eE") {
		return ParseDecimal(s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, errDecimalExpSyntax
	}
	scaled := new(big.Rat).Mul(r, big.NewRat(1_000_000_000, 1))
	if !scaled.IsInt() {
		return 0, errDecimalScale
	}
	if !scaled.Num().IsInt64() {
		return 0, errDecimalRange
	}
	return Decimal(scaled.Num().Int64()), nil
}

// String formats d with the fewest fractional digits that keep it exact.
func (d Decimal) String() string {
	return string(d.Append(nil))
}

// Append appends d's decimal text to b.
func (d Decimal) Append(b []byte) []byte {
	n := int64(d)
	if n < 0 {
		return d.appendSigned(b)
	}
	b = appendInt(b, n/1_000_000_000)
	frac := uint32(n % 1_000_000_000)
	if frac == 0 {
		return b
	}
	// Nine digits, leading zeros kept, two a step; then the trailing
	// zeros cut.
	var digits [9]byte
	digits[8] = byte('0' + frac%10)
	frac /= 10
	for i := 6; i >= 0; i -= 2 {
		r := frac % 100
		frac /= 100
		digits[i], digits[i+1] = digitPairs[2*r], digitPairs[2*r+1]
	}
	end := 9
	for digits[end-1] == '0' {
		end--
	}
	b = append(b, '.')
	return append(b, digits[:end]...)
}

// appendSigned is Append for negative amounts, which only quarantined
// records carry.
func (d Decimal) appendSigned(b []byte) []byte {
	n := int64(d)
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/1_000_000_000, 10)
	frac := n % 1_000_000_000
	if frac == 0 {
		return b
	}
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := 9
	for end > 0 && digits[end-1] == '0' {
		end--
	}
	b = append(b, '.')
	return append(b, digits[:end]...)
}
