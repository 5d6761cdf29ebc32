package config

import (
	"fmt"
	"strings"
)

// Issue is one problem found in a config: a warning, or part of an Error.
// Line and Column are 1-based; both are 0 when the issue has no position
// (a missing key, or a command-line override).
type Issue struct {
	File    string
	Line    int
	Column  int
	Key     string // the key path, like "datasets[0].type" or "learning_rate"
	Message string
}

// String formats the issue as "file:line:col: key: message".
func (i Issue) String() string {
	var b strings.Builder
	if i.File != "" {
		b.WriteString(i.File)
		if i.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", i.Line, i.Column)
		}
		b.WriteString(": ")
	}
	if i.Key != "" {
		b.WriteString(i.Key)
		b.WriteString(": ")
	}
	b.WriteString(i.Message)
	return b.String()
}

// Error is returned when a config cannot be used. It holds every error
// found, in file order, so a user can fix them all in one go.
type Error struct {
	Issues []Issue
}

// Error lists the issues, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}
