package runspec

import (
	"fmt"

	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/schedule"
)

// ResolvedName is the file name the resolved config is parsed under, so
// that a message about it says where it came from.
const ResolvedName = "resolved config"

// ParseConfig reads a run's resolved config (ConfigValidated.Resolved,
// TrainJob.Config).
func ParseConfig(resolved string) (*config.Config, error) {
	cfg, _, err := config.Parse(ResolvedName, []byte(resolved), nil)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Method is how cfg trains: "lora", "qlora" or "full".
func Method(cfg *config.Config) string {
	if cfg.Adapter == "" {
		return "full"
	}
	return cfg.Adapter
}

// Kind is the kind of weights a run of cfg saves: "adapter" or "full".
func Kind(cfg *config.Config) string {
	if cfg.Adapter == "" {
		return "full"
	}
	return "adapter"
}

// PeftConfig is the adapter_config a LoRA run of cfg trains, as Axolotl
// builds its LoraConfig: r, alpha, dropout, target modules (a list, a regex,
// or every linear layer with lora_target_linear), modules_to_save, rsLoRA.
func PeftConfig(cfg *config.Config) (*peft.Config, error) {
	if cfg.Adapter == "" {
		return nil, fmt.Errorf("runspec: the config trains no adapter")
	}
	pc := peft.NewConfig(cfg.LoraR, float64(cfg.LoraAlpha), cfg.LoraDropout, cfg.LoraTargetModules.Names)
	switch {
	case cfg.LoraTargetLinear:
		pc.TargetModules, pc.TargetRegex = nil, peft.AllLinear
	case cfg.LoraTargetModules.Pattern != "":
		pc.TargetModules, pc.TargetRegex = nil, cfg.LoraTargetModules.Pattern
	}
	pc.ModulesToSave = cfg.LoraModulesToSave
	pc.UseRSLoRA = cfg.PeftUseRSLoRA
	pc.EnsureWeightTying = cfg.PeftEnsureWeightTying
	if cfg.BaseModel != "" {
		base := cfg.BaseModel
		pc.BaseModelNameOrPath = &base
	}
	if err := pc.Validate(); err != nil {
		return nil, err
	}
	return pc, nil
}

// NewOptimizer builds the optimizer cfg names (AdamW with torch semantics
// for the AdamW family, or SGD) and the hyper-parameters a checkpoint
// records.
func NewOptimizer(cfg *config.Config) (optim.Optimizer, map[string]float64, error) {
	switch cfg.OptimizerKind() {
	case config.OptimizerSGD:
		o, err := optim.NewSGD(0, 0, cfg.WeightDecay, false)
		return o, map[string]float64{"weight_decay": cfg.WeightDecay}, err
	default:
		o, err := optim.NewAdamW(cfg.AdamBeta1, cfg.AdamBeta2, cfg.AdamEpsilon, cfg.WeightDecay)
		return o, map[string]float64{"beta1": cfg.AdamBeta1, "beta2": cfg.AdamBeta2, "eps": cfg.AdamEpsilon, "weight_decay": cfg.WeightDecay}, err
	}
}

// NewSchedule is cfg's learning-rate schedule over the plan's steps;
// cosine_min_lr_ratio turns cosine into cosine_with_min_lr, as Axolotl does.
func NewSchedule(cfg *config.Config, s Steps) (*schedule.Schedule, error) {
	kind := cfg.LRScheduler
	var opts schedule.Options
	if kind == schedule.Cosine && cfg.CosineMinLRRatio > 0 {
		kind = schedule.CosineWithMinLR
		rate := cfg.CosineMinLRRatio
		opts.MinLRRate = &rate
	}
	return schedule.New(kind, cfg.LearningRate, s.WarmupSteps, s.TotalSteps, opts)
}
