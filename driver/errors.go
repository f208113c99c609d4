package driver

import (
	"fmt"

	"github.com/hostpass/hostpass/errclass"
)

// The driver's errors carry a class (errclass) that picks the HTTP status,
// which the server does in one place. The text is what the user reads after
// "NetworkDriver.X: " in Docker's output; a cause is wrapped with %w, so it
// stays reachable (errors.Is) through the class.

// invalid: the request asks for something hostpass does not accept.
func invalid(format string, args ...any) error {
	return errclass.InvalidParameter(fmt.Errorf(format, args...))
}

// unavailable: hostpass cannot serve the call now, because its audit log or
// its state cannot be written.
func unavailable(format string, args ...any) error {
	return errclass.Unavailable(fmt.Errorf(format, args...))
}
