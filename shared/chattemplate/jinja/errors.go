package jinja

import "fmt"

// ErrorKind is the Python exception class Jinja2 would raise.
type ErrorKind string

// The error kinds a template can raise.
const (
	SyntaxError    ErrorKind = "TemplateSyntaxError"
	TemplateError  ErrorKind = "TemplateError" // raise_exception(message)
	UndefinedError ErrorKind = "UndefinedError"
	SecurityError  ErrorKind = "SecurityError"
	TypeError      ErrorKind = "TypeError"
	ValueError     ErrorKind = "ValueError"
	KeyError       ErrorKind = "KeyError"
	IndexError     ErrorKind = "IndexError"
	ZeroDivision   ErrorKind = "ZeroDivisionError"
	OverflowError  ErrorKind = "OverflowError"
	RuntimeError   ErrorKind = "RuntimeError"
	// TemplateRuntimeError is Jinja2's own runtime failure (an unknown
	// filter in a branch, assigning to a non-namespace attribute).
	TemplateRuntimeError ErrorKind = "TemplateRuntimeError"
	// AssertionError is an unknown filter or test found when compiling.
	AssertionError ErrorKind = "TemplateAssertionError"
	FilterError    ErrorKind = "FilterArgumentError"
)

// Error is an error raised while compiling or rendering a template. Msg is
// the message Python's str(exception) gives, so callers can show the same
// text transformers shows; Line is the template line (0 when unknown).
type Error struct {
	Kind ErrorKind
	Msg  string
	Line int
}

func (e *Error) Error() string {
	if e.Kind == SyntaxError && e.Line > 0 {
		return fmt.Sprintf("%s (template line %d)", e.Msg, e.Line)
	}
	return e.Msg
}

func errorf(kind ErrorKind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
