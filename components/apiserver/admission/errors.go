package admission

import "errors"

// Internal errors, reported as field.InternalError: they mean the caller
// passed something that is not an object, not that the object is invalid.
var (
	errNilObject    = errors.New("nil object")
	errTypeMismatch = errors.New("object type changed")
)
