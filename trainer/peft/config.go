package peft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/eftml/eft/shared/pyjson"
)

// ConfigFile and WeightsFile are the names PEFT gives an adapter's files.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// AllLinear is PEFT's shorthand target: every linear layer but the output head.
const AllLinear = "all-linear"

// Config is a LoRA adapter_config.json.
type Config struct {
	R           int
	LoraAlpha   float64
	LoraDropout float64
	// TargetModules lists module names (matched as a whole name or a dotted
	// suffix); TargetRegex is set instead when the file holds a string (a
	// regex PEFT full-matches, or "all-linear").
	TargetModules  []string
	TargetRegex    string
	ExcludeModules []string // names or suffixes; ExcludeRegex when a string
	ExcludeRegex   string
	ModulesToSave  []string
	// EnsureWeightTying keeps a tied head tied to the embeddings when
	// either is in ModulesToSave (PEFT's ensure_weight_tying; see
	// TieModulesToSave).
	EnsureWeightTying bool
	UseRSLoRA         bool
	// InitLoraWeights is true, false or an init scheme name ("gaussian", ...).
	InitLoraWeights     any
	BaseModelNameOrPath *string
	Revision            *string
	TaskType            string
	InferenceMode       bool
	RankPattern         map[string]int
	AlphaPattern        map[string]float64
	LayersToTransform   []int
	LayersPattern       []string

	// other holds the file's keys this type does not model, written back as
	// they were read.
	other map[string]any
}

// peftDefaults is the field set PEFT 0.21 writes for a LoRA adapter, with
// LoraConfig's defaults; Config's own fields overwrite their keys.
func peftDefaults() map[string]any {
	return map[string]any{
		"alora_invocation_tokens": nil, "alpha_pattern": map[string]any{}, "arrow_config": nil,
		"auto_mapping": nil, "base_model_name_or_path": nil, "bias": "none", "corda_config": nil,
		"ensure_weight_tying": false, "eva_config": nil, "exclude_modules": nil, "fan_in_fan_out": false,
		"inference_mode": true, "init_lora_weights": true, "kasa_config": nil, "layer_replication": nil,
		"layers_pattern": nil, "layers_to_transform": nil, "loftq_config": map[string]any{}, "lora_alpha": 8,
		"lora_bias": false, "lora_dropout": 0.0, "lora_ga_config": nil, "megatron_config": nil,
		"megatron_core": "megatron.core", "modules_to_save": nil, "monteclora_config": nil, "peft_type": "LORA",
		"peft_version": "0.21.0", "qalora_group_size": 16, "r": 8, "rank_pattern": map[string]any{},
		"revision": nil, "target_modules": nil, "target_parameters": nil, "task_type": "CAUSAL_LM",
		"trainable_token_indices": nil, "use_bdlora": nil, "use_dora": false, "use_qalora": false,
		"use_rslora": false, "velora_config": nil,
	}
}

// NewConfig returns a causal-LM LoRA config with PEFT's defaults for
// everything but the given values.
func NewConfig(r int, alpha, dropout float64, targets []string) *Config {
	return &Config{R: r, LoraAlpha: alpha, LoraDropout: dropout, TargetModules: targets,
		InitLoraWeights: true, TaskType: "CAUSAL_LM", InferenceMode: true}
}

// unsupported lists keys whose non-default values change what a LoRA layer
// computes in ways eft does not implement; loading such a config fails.
var unsupported = map[string]string{
	"use_dora": "DoRA", "lora_bias": "LoRA biases", "use_qalora": "QALoRA",
	"fan_in_fan_out": "fan_in_fan_out (Conv1D weights)", "layer_replication": "layer replication",
	"target_parameters": "target_parameters", "trainable_token_indices": "trainable tokens",
	"alora_invocation_tokens": "aLoRA", "use_bdlora": "BD-LoRA", "arrow_config": "Arrow routing",
	"megatron_config": "Megatron layers",
}

// LoadConfig reads an adapter_config.json.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses adapter_config.json content; name is used in errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("peft: %s: %v", name, err)
	}
	p := &cfgParser{name: name, raw: raw}
	c := &Config{other: map[string]any{}}
	if pt := p.str("peft_type", "LORA"); pt != "LORA" && p.err == nil {
		return nil, fmt.Errorf("peft: %s: key \"peft_type\": %q adapters are not supported (LORA only)", name, pt)
	}
	if bias := p.str("bias", "none"); bias != "none" && p.err == nil {
		return nil, fmt.Errorf("peft: %s: key \"bias\": %q is not supported (none only)", name, bias)
	}
	for key, what := range unsupported {
		if v, ok := raw[key]; ok && v != nil && v != false {
			if m, isMap := v.(map[string]any); isMap && len(m) == 0 {
				continue
			}
			return nil, fmt.Errorf("peft: %s: key %q: %s is not supported", name, key, what)
		}
	}
	c.R = p.integer("r", 8)
	c.LoraAlpha = p.number("lora_alpha", 8)
	c.LoraDropout = p.number("lora_dropout", 0)
	c.TargetModules, c.TargetRegex = p.namesOrRegex("target_modules")
	c.ExcludeModules, c.ExcludeRegex = p.namesOrRegex("exclude_modules")
	c.ModulesToSave, _ = p.namesOrRegex("modules_to_save")
	c.UseRSLoRA = p.boolean("use_rslora", false)
	c.EnsureWeightTying = p.boolean("ensure_weight_tying", false)
	c.InitLoraWeights = raw["init_lora_weights"]
	if c.InitLoraWeights == nil {
		c.InitLoraWeights = true
	}
	c.BaseModelNameOrPath = p.optStr("base_model_name_or_path")
	c.Revision = p.optStr("revision")
	c.TaskType = p.str("task_type", "")
	c.InferenceMode = p.boolean("inference_mode", false)
	c.RankPattern = p.intMap("rank_pattern")
	c.AlphaPattern = p.floatMap("alpha_pattern")
	c.LayersToTransform = p.intOrList("layers_to_transform")
	c.LayersPattern, _ = p.namesOrRegex("layers_pattern")
	if p.err != nil {
		return nil, p.err
	}
	modelled := map[string]bool{}
	for _, k := range []string{"r", "lora_alpha", "lora_dropout", "target_modules", "exclude_modules", "modules_to_save",
		"ensure_weight_tying", "use_rslora", "init_lora_weights", "base_model_name_or_path", "revision", "task_type", "inference_mode",
		"rank_pattern", "alpha_pattern", "layers_to_transform", "layers_pattern"} {
		modelled[k] = true
	}
	for k, v := range raw {
		if !modelled[k] {
			c.other[k] = v
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("peft: %s: %v", name, err)
	}
	return c, nil
}

// Validate checks the values eft relies on.
func (c *Config) Validate() error {
	switch {
	case c.R <= 0:
		return fmt.Errorf("key \"r\": rank must be positive, got %d", c.R)
	case !(c.LoraAlpha > 0) || math.IsInf(c.LoraAlpha, 0):
		return fmt.Errorf("key \"lora_alpha\": must be positive, got %g", c.LoraAlpha)
	case !(c.LoraDropout >= 0 && c.LoraDropout < 1):
		return fmt.Errorf("key \"lora_dropout\": must be in [0, 1), got %g", c.LoraDropout)
	case len(c.TargetModules) == 0 && c.TargetRegex == "":
		return fmt.Errorf("key \"target_modules\": no target modules")
	}
	for k, r := range c.RankPattern {
		if r <= 0 {
			return fmt.Errorf("key \"rank_pattern\": rank of %q must be positive, got %d", k, r)
		}
	}
	for k, a := range c.AlphaPattern {
		if !(a > 0) {
			return fmt.Errorf("key \"alpha_pattern\": alpha of %q must be positive, got %g", k, a)
		}
	}
	return nil
}

// Encode writes the config as PEFT's save_pretrained does
// (json.dumps(indent=2, sort_keys=True), no trailing newline), with PEFT
// 0.21's full field set.
func (c *Config) Encode() ([]byte, error) {
	out := peftDefaults()
	for k, v := range c.other {
		out[k] = v
	}
	out["r"] = c.R
	out["lora_alpha"] = intIfWhole(c.LoraAlpha)
	out["lora_dropout"] = c.LoraDropout
	out["target_modules"] = namesOrRegex(c.TargetModules, c.TargetRegex)
	out["exclude_modules"] = namesOrRegex(c.ExcludeModules, c.ExcludeRegex)
	out["modules_to_save"] = namesOrRegex(c.ModulesToSave, "")
	out["ensure_weight_tying"] = c.EnsureWeightTying
	out["use_rslora"] = c.UseRSLoRA
	out["init_lora_weights"] = c.InitLoraWeights
	out["base_model_name_or_path"] = optStr(c.BaseModelNameOrPath)
	out["revision"] = optStr(c.Revision)
	out["task_type"] = c.TaskType
	out["inference_mode"] = c.InferenceMode
	out["rank_pattern"] = orEmpty(c.RankPattern)
	out["alpha_pattern"] = orEmptyF(c.AlphaPattern)
	if c.LayersToTransform != nil {
		out["layers_to_transform"] = c.LayersToTransform
	} else {
		out["layers_to_transform"] = nil
	}
	out["layers_pattern"] = namesOrRegex(c.LayersPattern, "")
	enc, err := pyjson.Marshal(out, pyjson.Options{Indent: "  "})
	if err != nil {
		return nil, fmt.Errorf("peft: %s: %w", ConfigFile, err)
	}
	return enc, nil
}

func intIfWhole(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f)
	}
	return f
}

func namesOrRegex(names []string, regex string) any {
	if regex != "" {
		return regex
	}
	if names == nil {
		return nil
	}
	return names
}

func optStr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func orEmpty(m map[string]int) any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func orEmptyF(m map[string]float64) any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// cfgParser reads typed values from decoded JSON, keeping the first error.
type cfgParser struct {
	name string
	raw  map[string]any
	err  error
}

func (p *cfgParser) fail(key, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("peft: %s: key %q: %s", p.name, key, fmt.Sprintf(format, args...))
	}
}

func (p *cfgParser) number(key string, def float64) float64 {
	v, ok := p.raw[key]
	if !ok || v == nil {
		return def
	}
	n, isNum := v.(json.Number)
	f, err := n.Float64()
	if !isNum || err != nil {
		p.fail(key, "want a number, got %v", v)
		return def
	}
	return f
}

func (p *cfgParser) integer(key string, def int) int {
	f := p.number(key, float64(def))
	if f != math.Trunc(f) {
		p.fail(key, "want an integer, got %v", f)
	}
	return int(f)
}

func (p *cfgParser) str(key, def string) string {
	v, ok := p.raw[key]
	if !ok || v == nil {
		return def
	}
	s, isStr := v.(string)
	if !isStr {
		p.fail(key, "want a string, got %v", v)
	}
	return s
}

func (p *cfgParser) optStr(key string) *string {
	if v, ok := p.raw[key]; !ok || v == nil {
		return nil
	}
	s := p.str(key, "")
	return &s
}

func (p *cfgParser) boolean(key string, def bool) bool {
	v, ok := p.raw[key]
	if !ok || v == nil {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		p.fail(key, "want true or false, got %v", v)
	}
	return b
}

func (p *cfgParser) namesOrRegex(key string) ([]string, string) {
	v, ok := p.raw[key]
	if !ok || v == nil {
		return nil, ""
	}
	switch x := v.(type) {
	case string:
		return nil, x
	case []any:
		names := make([]string, 0, len(x))
		for _, e := range x {
			s, isStr := e.(string)
			if !isStr {
				p.fail(key, "want a list of strings, got %v", v)
				return nil, ""
			}
			names = append(names, s)
		}
		return names, ""
	}
	p.fail(key, "want a list of names or a regex string, got %v", v)
	return nil, ""
}

func (p *cfgParser) intOrList(key string) []int {
	v, ok := p.raw[key]
	if !ok || v == nil {
		return nil
	}
	toInt := func(e any) (int, bool) {
		n, isNum := e.(json.Number)
		i, err := n.Int64()
		return int(i), isNum && err == nil
	}
	if i, ok := toInt(v); ok {
		return []int{i}
	}
	list, isList := v.([]any)
	if !isList {
		p.fail(key, "want an integer or a list of integers, got %v", v)
		return nil
	}
	out := make([]int, 0, len(list))
	for _, e := range list {
		i, ok := toInt(e)
		if !ok {
			p.fail(key, "want integers, got %v", v)
			return nil
		}
		out = append(out, i)
	}
	return out
}

func (p *cfgParser) object(key string) map[string]any {
	v, ok := p.raw[key]
	if !ok || v == nil {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		p.fail(key, "want an object, got %v", v)
	}
	return m
}

func (p *cfgParser) intMap(key string) map[string]int {
	m := p.object(key)
	if len(m) == 0 {
		return nil
	}
	out := map[string]int{}
	for _, k := range sortedKeys(m) {
		n, isNum := m[k].(json.Number)
		i, err := n.Int64()
		if !isNum || err != nil {
			p.fail(key, "entry %q: want an integer, got %v", k, m[k])
			return nil
		}
		out[k] = int(i)
	}
	return out
}

func (p *cfgParser) floatMap(key string) map[string]float64 {
	m := p.object(key)
	if len(m) == 0 {
		return nil
	}
	out := map[string]float64{}
	for _, k := range sortedKeys(m) {
		n, isNum := m[k].(json.Number)
		f, err := n.Float64()
		if !isNum || err != nil {
			p.fail(key, "entry %q: want a number, got %v", k, m[k])
			return nil
		}
		out[k] = f
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
