package datasets

import (
	"errors"
	"fmt"
	"slices"
)

// Requirement is a field every row must carry, with the kinds (see Kind) it
// may hold. The ingest service derives these from the prompt strategy, e.g.
// {Field: "messages", Kinds: []string{"list"}} for chat_template.
type Requirement struct {
	Field string
	Kinds []string // empty: any non-null value
}

// DefaultMaxBadFraction is the share of bad rows above which reading fails
// unless Options.SkipBadRows is set.
const DefaultMaxBadFraction = 0.01

// DefaultMaxProblems is how many rejected rows a report lists one by one.
const DefaultMaxProblems = 20

// ErrTooManyBadRows is wrapped by the error Load returns when the share of
// rejected rows exceeds the limit.
var ErrTooManyBadRows = errors.New("too many bad rows")

// collector applies the requirements to rows as a reader produces them and
// keeps the report.
type collector struct {
	require     []Requirement
	maxProblems int
	rows        []Record
	report      Report
}

func newCollector(require []Requirement, maxProblems int) *collector {
	if maxProblems <= 0 {
		maxProblems = DefaultMaxProblems
	}
	return &collector{require: require, maxProblems: maxProblems}
}

// row checks one parsed row and keeps it or records why not.
func (c *collector) row(fields Object, src Source) {
	for _, req := range c.require {
		v, ok := fields.Get(req.Field)
		if !ok || v == nil {
			c.bad(src, ProblemMissing, fmt.Sprintf("missing field %q", req.Field))
			return
		}
		if len(req.Kinds) > 0 && !slices.Contains(req.Kinds, Kind(v)) {
			c.bad(src, ProblemWrongType, fmt.Sprintf("field %q is %s, want %s", req.Field, Kind(v), joinKinds(req.Kinds)))
			return
		}
	}
	for _, f := range fields {
		c.report.addColumnKinds(f.Name, Kind(f.Value))
	}
	c.rows = append(c.rows, Record{Fields: fields, Source: src})
	c.report.Rows++
}

// bad records a rejected row.
func (c *collector) bad(src Source, class, detail string) {
	c.report.Rejected++
	if c.report.Reasons == nil {
		c.report.Reasons = map[string]int{}
	}
	c.report.Reasons[class]++
	if len(c.report.Problems) < c.maxProblems {
		c.report.Problems = append(c.report.Problems, Problem{Source: src, Class: class, Detail: detail})
	}
}

func joinKinds(kinds []string) string {
	if len(kinds) == 1 {
		return kinds[0]
	}
	s := ""
	for i, k := range kinds {
		switch {
		case i == 0:
		case i == len(kinds)-1:
			s += " or "
		default:
			s += ", "
		}
		s += k
	}
	return s
}

// checkBadRows applies the policy to a finished report.
func checkBadRows(what string, r Report, skip bool, maxFraction float64) error {
	if r.Rejected == 0 {
		return nil
	}
	if maxFraction <= 0 {
		maxFraction = DefaultMaxBadFraction
	}
	total := r.Rows + r.Rejected
	if skip && r.Rows > 0 {
		return nil
	}
	if r.Rows == 0 || float64(r.Rejected) > maxFraction*float64(total) {
		return fmt.Errorf("%s: %w: %.2f%% of %d rows are bad; up to %.2f%% are dropped (and reported), more fail the load; fix or remove them: %s",
			what, ErrTooManyBadRows, 100*float64(r.Rejected)/float64(total), total, 100*maxFraction, r.Summary())
	}
	return nil
}
