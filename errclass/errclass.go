// Package errclass gives errors a class that survives wrapping, as moby's
// errdefs does: a class is a small interface with one marker method, an
// error joins a class by being wrapped with InvalidParameter, Unavailable or
// NotFound, and Is* finds the outermost class in a %w chain. The server maps
// classes to HTTP statuses, so it needs no package that made the error.
package errclass

// ErrInvalidParameter is the class of a request that asks for something
// hostpass does not accept. The server answers 400.
type ErrInvalidParameter interface{ InvalidParameter() }

// ErrUnavailable is the class of a call hostpass cannot serve now, because
// what it must write first (the audit log, its state) cannot be written.
// The server answers 503.
type ErrUnavailable interface{ Unavailable() }

// ErrNotFound is the class of a request naming something hostpass does not
// know. The server answers 404.
type ErrNotFound interface{ NotFound() }

type invalidParameter struct{ error }

func (invalidParameter) InvalidParameter() {}
func (e invalidParameter) Unwrap() error   { return e.error }

type unavailable struct{ error }

func (unavailable) Unavailable()    {}
func (e unavailable) Unwrap() error { return e.error }

type notFound struct{ error }

func (notFound) NotFound()       {}
func (e notFound) Unwrap() error { return e.error }

// InvalidParameter puts err in the invalid-parameter class; nil stays nil.
// The text is err's: the class adds nothing to what the user reads.
func InvalidParameter(err error) error {
	if err == nil || IsInvalidParameter(err) {
		return err
	}
	return invalidParameter{err}
}

// Unavailable puts err in the unavailable class; nil stays nil.
func Unavailable(err error) error {
	if err == nil || IsUnavailable(err) {
		return err
	}
	return unavailable{err}
}

// NotFound puts err in the not-found class; nil stays nil.
func NotFound(err error) error {
	if err == nil || IsNotFound(err) {
		return err
	}
	return notFound{err}
}

// class is the outermost error in err's chain that is in a class, or nil.
// The outermost class wins, as in moby's errdefs: a refusal classed
// unavailable stays unavailable even if its cause was classed otherwise
// further down (a store error wrapping a bad value it read, say).
func class(err error) error {
	for err != nil {
		switch err.(type) {
		case ErrInvalidParameter, ErrUnavailable, ErrNotFound:
			return err
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if c := class(e); c != nil {
					return c
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// IsInvalidParameter reports whether err's outermost class is invalid
// parameter.
func IsInvalidParameter(err error) bool {
	_, ok := class(err).(ErrInvalidParameter)
	return ok
}

// IsUnavailable reports whether err's outermost class is unavailable.
func IsUnavailable(err error) bool {
	_, ok := class(err).(ErrUnavailable)
	return ok
}

// IsNotFound reports whether err's outermost class is not found.
func IsNotFound(err error) bool {
	_, ok := class(err).(ErrNotFound)
	return ok
}
