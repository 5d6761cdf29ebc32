package datasets

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// splitPart is one piece of a split spec as Hugging Face datasets reads it
// (datasets.ReadInstruction): a split name, optionally sliced by absolute
// row indices or by percent ("train[:20%]", "train[100:-100]"); a spec joins
// pieces with "+" ("train+validation", "train[:10%]+train[-10%:]").
type splitPart struct {
	name     string
	from, to *int // nil: the start / the end
	percent  bool
}

var splitPartRe = regexp.MustCompile(`^([\w.-]+)(?:\[(-?\d+)?(%)?:(-?\d+)?(%)?\])?$`)

// parseSplitSpec parses spec into its pieces; an error quotes the piece.
func parseSplitSpec(spec string) ([]splitPart, error) {
	var parts []splitPart
	for _, raw := range strings.Split(spec, "+") {
		s := strings.TrimSpace(raw)
		m := splitPartRe.FindStringSubmatch(s)
		if m == nil {
			return nil, fmt.Errorf("split %q: %q is not a split name or a slice like train[:10%%] or train[100:200]", spec, s)
		}
		p := splitPart{name: m[1]}
		if m[2] != "" || m[4] != "" {
			if m[2] != "" && m[4] != "" && (m[3] == "") != (m[5] == "") {
				return nil, fmt.Errorf("split %q: %q mixes percent and absolute boundaries", spec, s)
			}
			p.percent = m[3] != "" || m[5] != ""
		}
		for _, b := range []struct {
			text string
			dst  **int
		}{{m[2], &p.from}, {m[4], &p.to}} {
			if b.text == "" {
				continue
			}
			v, err := strconv.Atoi(b.text)
			if err != nil {
				return nil, fmt.Errorf("split %q: %v", spec, err)
			}
			*b.dst = &v
		}
		if p.percent && (p.from != nil && (*p.from < -100 || *p.from > 100) || p.to != nil && (*p.to < -100 || *p.to > 100)) {
			return nil, fmt.Errorf("split %q: %q: a percent boundary lies in [-100, 100]", spec, s)
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// bounds is the half-open row range [lo, hi) the piece takes of a split of
// n rows, as datasets computes it: a percent boundary is round(b·n/100)
// rounding half to even (Python's round), a negative boundary counts from
// the end, and an absolute one beyond n is an error.
func (p splitPart) bounds(n int) (lo, hi int, err error) {
	conv := func(b *int, def int) int {
		if b == nil {
			return def
		}
		if p.percent {
			return int(math.RoundToEven(float64(*b) * float64(n) / 100))
		}
		return *b
	}
	lo, hi = conv(p.from, 0), conv(p.to, n)
	if lo < -n || lo > n || hi < -n || hi > n {
		return 0, 0, fmt.Errorf("split %s: requested slice [%d:%d] is incompatible with its %d rows", p.name, lo, hi, n)
	}
	if lo < 0 {
		lo += n
	}
	if hi < 0 {
		hi += n
	}
	if hi < lo {
		hi = lo // an empty slice, as Python's
	}
	return lo, hi, nil
}
