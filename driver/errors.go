package driver

import "fmt"

// Error kinds. The text is what the user reads after "NetworkDriver.X: " in
// Docker's output; the kind picks the HTTP status (server does that, in one
// place).

// InvalidError: the request asks for something hostpass does not accept.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// UnavailableError: hostpass cannot serve the call now, because its audit log
// or its state cannot be written.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return &InvalidError{fmt.Errorf(format, args...)}
}

func unavailable(format string, args ...any) error {
	return &UnavailableError{fmt.Errorf(format, args...)}
}
