package datasets

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Source says where a row came from.
type Source struct {
	// File is the path, URL or hub file ("hub:owner/name@commit/path") read.
	File string
	// Line is the 1-based line the row starts on in line-oriented text
	// (JSON lines, JSON arrays, CSV, text); 0 for binary formats.
	Line int
	// Row is the 0-based index of the row within its file.
	Row int
}

// String renders "file:line" for text formats and "file row N" otherwise,
// the form error messages and reports use.
func (s Source) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return fmt.Sprintf("%s row %d", s.File, s.Row)
}

// Record is one raw dataset row and where it came from.
type Record struct {
	Fields Object
	Source Source
}

// Get returns the named field; an absent field and a null one both read as
// (nil, false), as Hugging Face datasets (which unify columns across rows)
// make them indistinguishable too.
func (r Record) Get(name string) (any, bool) {
	v, ok := r.Fields.Get(name)
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

// Problem classes: the reasons a row is rejected.
const (
	ProblemMalformed  = "malformed"   // the row's text does not parse (JSON, CSV)
	ProblemNotObject  = "not-object"  // a JSON row that is not an object
	ProblemMissing    = "missing"     // a required field is absent or null
	ProblemWrongType  = "wrong-type"  // a required field has the wrong type
	ProblemFieldCount = "field-count" // a CSV line with more fields than the header
)

// Problem is one rejected row.
type Problem struct {
	Source Source
	Class  string
	Detail string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s", p.Source, p.Detail) }

// Column is one field seen in the rows, with the value kinds it held.
type Column struct {
	Name  string
	Kinds []string
}

// Report summarizes what reading produced.
type Report struct {
	Rows     int            // rows accepted
	Rejected int            // rows rejected
	Reasons  map[string]int // rejected rows per Problem class
	Problems []Problem      // the first rejected rows, in reading order
	Columns  []Column       // fields seen in accepted rows, in first-seen order
	Files    []string       // files read, in order
}

// Summary is a one-paragraph account of the rejected rows for errors and logs.
func (r Report) Summary() string {
	if r.Rejected == 0 {
		return fmt.Sprintf("%d rows, none rejected", r.Rows)
	}
	classes := make([]string, 0, len(r.Reasons))
	for c := range r.Reasons {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows accepted, %d rejected (", r.Rows, r.Rejected)
	for i, c := range classes {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", c, r.Reasons[c])
	}
	b.WriteString(")")
	for _, p := range r.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	if len(r.Problems) < r.Rejected {
		fmt.Fprintf(&b, "\n  ... and %d more", r.Rejected-len(r.Problems))
	}
	return b.String()
}

func (r *Report) addColumnKinds(name string, kinds ...string) {
	i := slices.IndexFunc(r.Columns, func(c Column) bool { return c.Name == name })
	if i < 0 {
		r.Columns = append(r.Columns, Column{Name: name})
		i = len(r.Columns) - 1
	}
	for _, k := range kinds {
		if !slices.Contains(r.Columns[i].Kinds, k) {
			r.Columns[i].Kinds = append(r.Columns[i].Kinds, k)
		}
	}
}
