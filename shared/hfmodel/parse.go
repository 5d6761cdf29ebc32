package hfmodel

import (
	"encoding/json"
	"fmt"
	"math"
)

// parser reads typed values out of a config.json object and keeps the first
// error, which names the file and key.
type parser struct {
	name string
	raw  map[string]json.RawMessage
	err  error
}

func (p *parser) fail(key, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("hfmodel: %s: key %q: %s", p.name, key, fmt.Sprintf(format, args...))
	}
}

// get returns the raw value of key; absent and null both give ok == false.
func get(raw map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	v, ok := raw[key]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

func isNull(raw map[string]json.RawMessage, key string) bool {
	v, ok := raw[key]
	return ok && string(v) == "null"
}

func (p *parser) numberFrom(raw map[string]json.RawMessage, key string, def float64) float64 {
	v, ok := get(raw, key)
	if !ok {
		return def
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		p.fail(key, "want a number, got %s", v)
		return def
	}
	return f
}

func (p *parser) number(key string, def float64) float64 { return p.numberFrom(p.raw, key, def) }

func (p *parser) integerFrom(raw map[string]json.RawMessage, key string, def int) int {
	v, ok := get(raw, key)
	if !ok {
		return def
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		p.fail(key, "want an integer, got %s", v)
		return def
	}
	return int(f)
}

func (p *parser) integer(key string, def int) int { return p.integerFrom(p.raw, key, def) }

func (p *parser) str(key, def string) string {
	v, ok := get(p.raw, key)
	if !ok {
		return def
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		p.fail(key, "want a string, got %s", v)
		return def
	}
	return s
}

func (p *parser) booleanFrom(raw map[string]json.RawMessage, key string, def bool) bool {
	v, ok := get(raw, key)
	if !ok {
		return def
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		p.fail(key, "want true or false, got %s", v)
		return def
	}
	return b
}

func (p *parser) boolean(key string, def bool) bool { return p.booleanFrom(p.raw, key, def) }

func (p *parser) strList(key string) []string {
	v, ok := get(p.raw, key)
	if !ok {
		return nil
	}
	var l []string
	if err := json.Unmarshal(v, &l); err != nil {
		p.fail(key, "want a list of strings, got %s", v)
	}
	return l
}

// numberList reads a list of numbers; absent or null gives nil.
func (p *parser) numberList(raw map[string]json.RawMessage, key string) []float64 {
	v, ok := get(raw, key)
	if !ok {
		return nil
	}
	var l []float64
	if err := json.Unmarshal(v, &l); err != nil {
		p.fail(key, "want a list of numbers, got %s", v)
	}
	return l
}

// optInt reads an integer that may be null: an explicit null gives nil, an
// absent key gives def.
func (p *parser) optInt(key string, def *int) *int {
	if isNull(p.raw, key) {
		return nil
	}
	if _, ok := p.raw[key]; !ok {
		return def
	}
	v := p.integer(key, 0)
	return &v
}

// intOrList reads a key that holds an integer or a list of integers
// (eos_token_id); null gives nil, absent gives def.
func (p *parser) intOrList(key string, def []int) []int {
	if isNull(p.raw, key) {
		return nil
	}
	v, ok := p.raw[key]
	if !ok {
		return def
	}
	var list []float64
	if err := json.Unmarshal(v, &list); err == nil {
		out := make([]int, len(list))
		for i, f := range list {
			if f != math.Trunc(f) {
				p.fail(key, "want integers, got %s", v)
			}
			out[i] = int(f)
		}
		return out
	}
	return []int{p.integer(key, 0)}
}

// slidingWindow resolves which layers use a sliding window, as
// MistralConfig, Qwen2Config and Qwen3Config do.
func (p *parser) slidingWindow(c *Config, d archDefaults) {
	window := 0
	if !isNull(p.raw, "sliding_window") {
		window = p.integer("sliding_window", d.slidingWindow)
	}
	if window < 0 {
		p.fail("sliding_window", "must not be negative, got %d", window)
	}
	layers := max(c.NumHiddenLayers, 0)
	types := make([]string, layers)
	for i := range types {
		types[i] = "full_attention"
	}
	switch c.ModelType {
	case "llama", "gemma":
		window = 0
	case "mistral", "phi3":
		// MistralAttention and Phi3Attention slide on every layer whenever
		// sliding_window is set.
		if window > 0 {
			for i := range types {
				types[i] = "sliding_attention"
			}
		}
	case "gemma2":
		// Gemma2Config: layer_types as given, else every other layer
		// slides, starting with the first.
		if _, ok := get(p.raw, "layer_types"); ok {
			types = p.layerTypes(layers)
		} else {
			for i := range types {
				if i%2 == 0 {
					types[i] = "sliding_attention"
				}
			}
		}
	case "qwen2", "qwen3":
		c.UseSlidingWindow = p.boolean("use_sliding_window", false)
		c.MaxWindowLayers = p.integer("max_window_layers", 28)
		if !c.UseSlidingWindow {
			window = 0
		}
		if _, ok := get(p.raw, "layer_types"); ok {
			types = p.layerTypes(layers)
		} else if window > 0 {
			for i := c.MaxWindowLayers; i < layers; i++ {
				types[i] = "sliding_attention"
			}
		}
	}
	c.SlidingWindow = window
	c.LayerTypes = types
}

// layerTypes reads layer_types: one full_attention or sliding_attention
// per layer. On an error it fails the parse and returns full attention.
func (p *parser) layerTypes(layers int) []string {
	types := make([]string, layers)
	for i := range types {
		types[i] = "full_attention"
	}
	v, _ := get(p.raw, "layer_types")
	var given []string
	if err := json.Unmarshal(v, &given); err != nil {
		p.fail("layer_types", "want a list of strings, got %s", v)
		return types
	}
	if len(given) != layers {
		p.fail("layer_types", "has %d entries for %d layers (num_hidden_layers)", len(given), layers)
		return types
	}
	for i, t := range given {
		if t != "full_attention" && t != "sliding_attention" {
			p.fail("layer_types", "entry %d is %q; want full_attention or sliding_attention", i, t)
			return types
		}
	}
	return given
}

// rope standardises RoPE settings the way transformers 5 does: rope_scaling
// (older files) wins over rope_parameters; rope_theta comes from inside the
// dictionary, else the top-level key, else 10000; rope_type from "rope_type",
// else the legacy "type", else "default".
func (p *parser) rope() RoPE {
	key := "rope_parameters"
	var params map[string]json.RawMessage
	for _, k := range []string{"rope_scaling", "rope_parameters"} {
		v, ok := get(p.raw, k)
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, &params); err != nil {
			p.fail(k, "want an object, got %s", v)
			return RoPE{}
		}
		key = k
		break
	}
	sub := &parser{name: p.name, raw: params}
	fail := func() {
		if sub.err != nil && p.err == nil {
			// Name the nested key as rope_parameters.factor and so on.
			p.err = fmt.Errorf("%s (inside %q)", sub.err, key)
		}
	}
	defer fail()
	if params != nil {
		if _, hasType := params["rope_type"]; !hasType {
			if _, legacy := params["type"]; !legacy {
				for k, v := range params {
					if len(v) > 0 && v[0] == '{' {
						sub.fail(k, "per-layer-type RoPE settings are not supported for %s", key)
						return RoPE{}
					}
				}
			}
		}
	}
	r := RoPE{
		Theta:                sub.numberFrom(params, "rope_theta", p.number("rope_theta", 10000)),
		Factor:               sub.numberFrom(params, "factor", 0),
		PartialRotary:        sub.numberFrom(params, "partial_rotary_factor", p.number("partial_rotary_factor", 0)),
		LowFreqFactor:        sub.numberFrom(params, "low_freq_factor", 0),
		HighFreqFactor:       sub.numberFrom(params, "high_freq_factor", 0),
		OriginalMaxPositions: sub.integerFrom(params, "original_max_position_embeddings", 0),
		AttentionFactor:      sub.numberFrom(params, "attention_factor", 0),
		BetaFast:             sub.numberFrom(params, "beta_fast", 0),
		BetaSlow:             sub.numberFrom(params, "beta_slow", 0),
		Mscale:               sub.numberFrom(params, "mscale", 0),
		MscaleAllDim:         sub.numberFrom(params, "mscale_all_dim", 0),
	}
	r.ShortFactor = sub.numberList(params, "short_factor")
	r.LongFactor = sub.numberList(params, "long_factor")
	if _, ok := get(params, "truncate"); ok {
		t := sub.booleanFrom(params, "truncate", true)
		r.Truncate = &t
	}
	r.Type = "default"
	r.from = key
	for _, k := range []string{"rope_type", "type"} {
		if v, ok := get(params, k); ok {
			if err := json.Unmarshal(v, &r.Type); err != nil {
				sub.fail(k, "want a string, got %s", v)
			}
			break
		}
	}
	return r
}

// phi3RoPE applies what Phi3Config does to the standardised RoPE settings:
// the legacy rope types "su" and "yarn" mean longrope, only default and
// longrope are allowed, and the top-level original_max_position_embeddings
// (4096 when absent) wins over one inside the RoPE dictionary.
func (p *parser) phi3RoPE(c *Config) {
	r := &c.RoPE
	switch r.Type {
	case "su", "yarn":
		r.Type = "longrope"
	case "default", "longrope":
	default:
		p.fail(r.from, "rope_type %q is not supported by phi3 (default, longrope)", r.Type)
	}
	if r.Type == "longrope" {
		r.OriginalMaxPositions = p.integer("original_max_position_embeddings", 4096)
	}
}
