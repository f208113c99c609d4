package errclass

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

func TestClassSurvivesWrapping(t *testing.T) {
	cause := fmt.Errorf("write audit.jsonl: %w", syscall.ENOSPC)
	err := fmt.Errorf("refusing endpoint.join: %w", Unavailable(cause))

	if !IsUnavailable(err) {
		t.Errorf("IsUnavailable(%q) = false, want true", err)
	}
	if IsInvalidParameter(err) || IsNotFound(err) {
		t.Errorf("%q is in a class it was not put in", err)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("errors.Is(%q, ENOSPC) = false: the cause is lost", err)
	}
	if got, want := err.Error(), "refusing endpoint.join: write audit.jsonl: no space left on device"; got != want {
		t.Errorf("text = %q, want %q: the class must add nothing to it", got, want)
	}
}

func TestEachClass(t *testing.T) {
	base := errors.New("x")
	for _, c := range []struct {
		name string
		err  error
		is   func(error) bool
	}{
		{"invalid parameter", InvalidParameter(base), IsInvalidParameter},
		{"unavailable", Unavailable(base), IsUnavailable},
		{"not found", NotFound(base), IsNotFound},
	} {
		if !c.is(c.err) || !c.is(fmt.Errorf("a: %w", c.err)) {
			t.Errorf("%s: class not found in the error or its wrapping", c.name)
		}
		if !errors.Is(c.err, base) {
			t.Errorf("%s: the cause is lost", c.name)
		}
	}
	if IsUnavailable(base) || IsInvalidParameter(nil) {
		t.Error("an error nobody classed is in a class")
	}
	if InvalidParameter(nil) != nil || Unavailable(nil) != nil || NotFound(nil) != nil {
		t.Error("nil was classed into a non-nil error")
	}
}

// A sentinel made once, as audit.ErrUnavailable is, keeps errors.Is working
// by identity while carrying its class.
func TestClassedSentinel(t *testing.T) {
	sentinel := Unavailable(errors.New("audit log unavailable"))
	err := fmt.Errorf("%w: the audit log is closed", sentinel)
	if !errors.Is(err, sentinel) || !IsUnavailable(err) {
		t.Errorf("%q lost its sentinel or its class", err)
	}
}

// The outermost class wins: a call refused as unavailable stays a 503 even
// when the error it wraps was classed invalid further down.
func TestOutermostClassWins(t *testing.T) {
	inner := InvalidParameter(errors.New("networks.json: a network with an empty ID"))
	err := fmt.Errorf("refusing network.create: %w", Unavailable(fmt.Errorf("cannot read state: %w", inner)))
	if !IsUnavailable(err) || IsInvalidParameter(err) {
		t.Errorf("%q: IsUnavailable = %v, IsInvalidParameter = %v; want the outer class, unavailable, only",
			err, IsUnavailable(err), IsInvalidParameter(err))
	}
	if !errors.Is(err, inner) {
		t.Errorf("%q lost its cause", err)
	}
	joined := errors.Join(errors.New("plain"), NotFound(errors.New("no such network")))
	if !IsNotFound(joined) {
		t.Errorf("%q: the class inside errors.Join is not found", joined)
	}
}
