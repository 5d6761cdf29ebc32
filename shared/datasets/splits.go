package datasets

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Split resolution follows Hugging Face datasets' data_files rules for a
// folder or hub repo without an explicit file list: sharded
// "data/{split}-NNNNN-of-NNNNN" names first, then split keywords in a
// directory name, then in a file name, else everything is "train".

var splitKeywords = []struct {
	split    string
	keywords []string
}{
	{"train", []string{"train", "training"}},
	{"validation", []string{"validation", "valid", "dev", "val"}},
	{"test", []string{"test", "testing", "eval", "evaluation"}},
}

const nonWordChars = "-._ 0-9"

var (
	keywordsInDirPatterns = []string{
		"**/{keyword}/**", "**/{keyword}[{sep}]*/**", "**/*[{sep}]{keyword}/**", "**/*[{sep}]{keyword}[{sep}]*/**",
	}
	keywordsInFilePatterns = []string{"**/{keyword}[{sep}]*", "**/*[{sep}]{keyword}[{sep}]*"}
	shardedSplitPattern    = regexp.MustCompile(`^data/([A-Za-z0-9_]+)-[0-9]{5}-of-[0-9]{5}[^/]*\.[^/]*$`)
)

// globRegexp compiles an fsspec-style glob: "**" spans directories, "*" and
// "?" stay within one path segment, "[...]" is a character class.
func globRegexp(glob string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString("(?:[^/]*/)*")
			i += 2
		case strings.HasPrefix(glob[i:], "/**") && i+3 == len(glob):
			b.WriteString("/.*")
			i += 2
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("glob %q: unclosed '['", glob)
			}
			class := glob[i+1 : i+1+end]
			b.WriteString("[")
			if strings.HasPrefix(class, "!") {
				b.WriteString("^")
				class = class[1:]
			}
			for _, r := range class {
				if r == '\\' || r == ']' || r == '[' || r == '^' {
					b.WriteByte('\\')
				}
				b.WriteRune(r)
			}
			b.WriteString("]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// defaultSplits assigns data files (slash-separated paths relative to the
// dataset root) to splits by Hugging Face's default patterns.
func defaultSplits(files []string) map[string][]string {
	sharded := map[string][]string{}
	for _, f := range files {
		if m := shardedSplitPattern.FindStringSubmatch(f); m != nil {
			sharded[m[1]] = append(sharded[m[1]], f)
		}
	}
	if len(sharded) > 0 {
		return sharded
	}
	for _, patterns := range [][]string{keywordsInDirPatterns, keywordsInFilePatterns} {
		out := map[string][]string{}
		for _, sk := range splitKeywords {
			var res []*regexp.Regexp
			for _, kw := range sk.keywords {
				for _, p := range patterns {
					g := strings.NewReplacer("{keyword}", kw, "{sep}", nonWordChars).Replace(p)
					if re, err := globRegexp(g); err == nil {
						res = append(res, re)
					}
				}
			}
			for _, f := range files {
				// A leading "**/" also matches at the root: match "/"+f.
				for _, re := range res {
					if re.MatchString(f) || re.MatchString("/"+f) {
						out[sk.split] = append(out[sk.split], f)
						break
					}
				}
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	if len(files) == 0 {
		return map[string][]string{}
	}
	return map[string][]string{"train": slices.Clone(files)}
}

// formatOf maps a file name to its builder (json, csv, parquet, arrow, text)
// and whether it is gzip-compressed; "" for files no builder reads.
func formatOf(name string) (format string, gz bool) {
	lower := strings.ToLower(name)
	if strings.HasSuffix(lower, ".gz") {
		gz = true
		lower = strings.TrimSuffix(lower, ".gz")
	}
	switch path.Ext(lower) {
	case ".json", ".jsonl", ".ndjson":
		return "json", gz
	case ".csv":
		return "csv", gz
	case ".parquet":
		return "parquet", false
	case ".arrow":
		return "arrow", false
	case ".txt":
		return "text", gz
	}
	return "", false
}

// dataFilesOf keeps the files a builder can read, skipping hidden ones
// ("." or "_" path components, as datasets does), and picks the most common
// format when a folder mixes several, as datasets' module inference does.
func dataFilesOf(files []string) (kept []string, format string) {
	counts := map[string]int{}
	var candidates []string
	for _, f := range files {
		fmtName, _ := formatOf(f)
		if isHidden(f) || fmtName == "" {
			continue
		}
		counts[fmtName]++
		candidates = append(candidates, f)
	}
	best := ""
	for f, n := range counts {
		if n > counts[best] || (n == counts[best] && f < best) {
			best = f
		}
	}
	for _, f := range candidates {
		if ff, _ := formatOf(f); ff == best {
			kept = append(kept, f)
		}
	}
	sort.Strings(kept)
	return kept, best
}
