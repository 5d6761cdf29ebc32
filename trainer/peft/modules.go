package peft

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Rank is the LoRA rank of a module: its rank_pattern entry, else r.
func (c *Config) Rank(module string) int {
	if k, ok := patternKey(sortedKeys(c.RankPattern), module); ok {
		return c.RankPattern[k]
	}
	return c.R
}

// Alpha is the LoRA alpha of a module: its alpha_pattern entry, else lora_alpha.
func (c *Config) Alpha(module string) float64 {
	if k, ok := patternKey(sortedKeys(c.AlphaPattern), module); ok {
		return c.AlphaPattern[k]
	}
	return c.LoraAlpha
}

// Scaling is the factor on B·A·x: alpha/r, or alpha/sqrt(r) with use_rslora.
func (c *Config) Scaling(module string) float64 {
	r := float64(c.Rank(module))
	if c.UseRSLoRA {
		return c.Alpha(module) / math.Sqrt(r)
	}
	return c.Alpha(module) / r
}

// patternKey finds the first pattern (in sorted order) that PEFT's
// get_pattern_key would match: the module name ends with "." + pattern, the
// pattern read as a regex, or equals it.
func patternKey(patterns []string, module string) (string, bool) {
	for _, p := range patterns {
		if p == module {
			return p, true
		}
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + p + `)$`)
		if err == nil && re.MatchString(module) {
			return p, true
		}
	}
	return "", false
}

// matchesName is PEFT's test for a list of names: the module is one of them
// or ends with "." + one of them.
func matchesName(names []string, module string) (string, bool) {
	for _, n := range names {
		if module == n || strings.HasSuffix(module, "."+n) {
			return n, true
		}
	}
	return "", false
}

var layerIndex = regexp.MustCompile(`\.(\d+)\.`)

// inLayers applies layers_to_transform (and layers_pattern): the module's
// layer index must be listed. Modules outside numbered layers never match.
func (c *Config) inLayers(module string) bool {
	if len(c.LayersToTransform) == 0 {
		return true
	}
	var idx []string
	if len(c.LayersPattern) > 0 {
		for _, lp := range c.LayersPattern {
			re := regexp.MustCompile(`(?:^|\.)` + regexp.QuoteMeta(lp) + `\.(\d+)\.`)
			if m := re.FindStringSubmatch(module); m != nil {
				idx = m[1:]
				break
			}
		}
	} else if m := layerIndex.FindStringSubmatch(module); m != nil {
		idx = m[1:]
	}
	if idx == nil {
		return false
	}
	n, _ := strconv.Atoi(idx[0])
	return slices.Contains(c.LayersToTransform, n)
}

// SelectTargets returns, among the model's linear modules (full module paths
// such as "model.layers.0.self_attn.q_proj"), those the config targets, in
// the given order, as PEFT selects them. outputHead names the module that
// "all-linear" leaves out (lm_head). A target name that matches no module is
// an error naming it and the available names, as PEFT raises one.
func (c *Config) SelectTargets(linear []string, outputHead string) ([]string, error) {
	var exclude *regexp.Regexp
	if c.ExcludeRegex != "" {
		var err error
		if exclude, err = regexp.Compile(`^(?:` + c.ExcludeRegex + `)$`); err != nil {
			return nil, fmt.Errorf("peft: exclude_modules regex %q: %v", c.ExcludeRegex, err)
		}
	}
	var target *regexp.Regexp
	if c.TargetRegex != "" && c.TargetRegex != AllLinear {
		var err error
		if target, err = regexp.Compile(`^(?:` + c.TargetRegex + `)$`); err != nil {
			return nil, fmt.Errorf("peft: target_modules regex %q: %v", c.TargetRegex, err)
		}
	}
	used := map[string]bool{}
	var out []string
	for _, m := range linear {
		if exclude != nil && exclude.MatchString(m) {
			continue
		}
		if _, ok := matchesName(c.ExcludeModules, m); ok {
			continue
		}
		hit := false
		switch {
		case c.TargetRegex == AllLinear:
			hit = m != outputHead
		case target != nil:
			hit = target.MatchString(m)
		default:
			var name string
			name, hit = matchesName(c.TargetModules, m)
			if hit {
				used[name] = true
			}
		}
		if hit && c.inLayers(m) {
			out = append(out, m)
		}
	}
	var unknown []string
	for _, t := range c.TargetModules {
		if !used[t] {
			unknown = append(unknown, t)
		}
	}
	if len(unknown) > 0 || len(out) == 0 {
		short := map[string]bool{}
		for _, m := range linear {
			short[m[strings.LastIndex(m, ".")+1:]] = true
		}
		what := fmt.Sprintf("target_modules %v", c.TargetModules)
		if len(unknown) > 0 {
			what = fmt.Sprintf("target module(s) %s", strings.Join(unknown, ", "))
		} else if c.TargetRegex != "" {
			what = fmt.Sprintf("target_modules %q", c.TargetRegex)
		}
		return nil, fmt.Errorf("peft: %s not found in the base model; its linear modules are named %s",
			what, strings.Join(sortedKeys(short), ", "))
	}
	return out, nil
}
