//go:build linux

package main

import (
	"math/big"
	"strings"
	"testing"
	"time"
)

// FuzzParseSize: --audit-max-size takes a byte count, or a whole number of
// KiB, MiB or GiB. Anything else, and anything past an int64 of bytes, is
// refused with an error naming the accepted forms; what is accepted is
// exactly the number the text says.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1048576", "64MiB", "512KiB", "1GiB", "10B", " 5 MiB", "-1", "1.5GiB", "64mb",
		"8589934591GiB", "8589934592GiB", "9223372036854775807", "9223372036854775807B", "+7KiB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), "want bytes, or a number with KiB, MiB or GiB") && !strings.Contains(err.Error(), "too large: at most 9223372036854775807 bytes") {
				t.Fatalf("parseSize(%q): error %q does not name the accepted forms", s, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d, a negative size", s, n)
		}
		// What the text says, in arbitrary precision.
		num, mult := s, int64(1)
		for _, u := range []struct {
			suffix string
			mult   int64
		}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
			if rest, ok := strings.CutSuffix(s, u.suffix); ok {
				num, mult = rest, u.mult
				break
			}
		}
		want, ok := new(big.Int).SetString(strings.TrimPrefix(strings.TrimSpace(num), "+"), 10)
		if !ok {
			t.Fatalf("parseSize(%q) = %d, but %q is not a whole number", s, n, num)
		}
		want.Mul(want, big.NewInt(mult))
		if want.Cmp(big.NewInt(n)) != 0 {
			t.Fatalf("parseSize(%q) = %d, the text says %s", s, n, want)
		}
	})
}

// FuzzParseInterval: --seal-epoch-interval takes what time.ParseDuration
// reads, if positive; anything else is refused naming the accepted form.
func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{"30s", "1m", "1h30m", "0", "0s", "-1m", "1", "1.5h", "9223372036854775807ns", "9223372036854775808ns", "1e3s", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseInterval(s)
		want, perr := time.ParseDuration(s)
		switch {
		case err != nil && !strings.Contains(err.Error(), "is not a positive duration such as 30s or 1m"):
			t.Fatalf("parseInterval(%q): error %q does not name the accepted form", s, err)
		case err != nil && perr == nil && want > 0:
			t.Fatalf("parseInterval(%q) refused %v: %v", s, want, err)
		case err == nil && (perr != nil || d != want || d <= 0):
			t.Fatalf("parseInterval(%q) = %v, want an error or a positive %v", s, d, want)
		}
	})
}
