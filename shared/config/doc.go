// Package config owns eft's run configuration: Axolotl's YAML schema as Go
// types, its defaults, its validation rules and Axolotl-style `--key value`
// command-line overrides.
//
// A config is read in one pass over the YAML syntax tree so that every
// problem is reported with the file, line and column of the key it concerns
// (Issue). Keys fall into four groups:
//
//   - keys eft uses: typed fields of Config, defaults as Axolotl sets them;
//   - Axolotl keys that only touch reporting, hardware tuning or speed
//     (wandb_*, hub_model_id, torch_compile, ...): accepted, reported as a
//     warning when set, otherwise without effect;
//   - Axolotl keys eft knows but cannot honour (deepspeed, fsdp, rl, dpo_*,
//     gptq, ...): an error naming the key when set to anything but their
//     "off" value (load_in_8bit is a warning: LoRA trains on the
//     unquantized base);
//   - anything else: a warning, or an error under `strict: true`.
//
// The package does not read datasets, tokenizers or models; it only checks
// what can be checked from the config itself. Step arithmetic that needs the
// dataset size (warmup, logging, save and eval intervals) is in Plan.
package config
