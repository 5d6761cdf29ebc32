package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/services/merger"
	"github.com/eftml/eft/services/runspec"
)

func init() { addCommand(newMergeCommand) }

func newMergeCommand(g *globals) *cobra.Command {
	var loraDir string
	cmd := &cobra.Command{
		Use:   "merge-lora CONFIG [--lora-model-dir DIR] [--key value ...]",
		Short: "Merge a trained LoRA adapter into its base model: a Hugging Face model directory",
		Long: `Merge the adapter in --lora-model-dir (default: lora_model_dir, else output_dir)
into the config's base model, as PEFT's merge_and_unload does, and write a
Hugging Face model directory to output_dir/merged: the weights in the base
model's dtype (sharded with an index above 5 GB), config.json,
generation_config.json and the tokenizer files. "eft train" does the same
after a run when the config sets merge_lora: true.`,
	}
	cmd.Flags().StringVar(&loraDir, "lora-model-dir", "", "the adapter directory (adapter_config.json, adapter_model.safetensors)")
	return configCommand(g, cmd, func(cmd *cobra.Command, path string, overrides []string) error {
		cfg, err := loadLocalConfig(cmd.ErrOrStderr(), path, overrides)
		if err != nil {
			return err
		}
		adapter := adapterDir(cfg, loraDir)
		if adapter == "" {
			return fmt.Errorf("no adapter to merge: give --lora-model-dir, or set lora_model_dir, or train into output_dir %s first", cfg.OutputDir)
		}
		wd, _ := os.Getwd()
		var res runspec.Resolver
		baseDir, err := res.BaseModelDir(cmd.Context(), cfg, wd)
		if err != nil {
			return err
		}
		tokDir, err := res.TokenizerDir(cmd.Context(), cfg, wd, baseDir)
		if err != nil {
			return err
		}
		out := filepath.Join(runspec.LocalPath(cfg.OutputDir, wd), merger.MergedDir)
		files, err := merger.MergeDir(baseDir, adapter, tokDir, out, merger.MergeOptions{Quantized: runspec.Quantization(cfg)})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "merged %s into %s: %d files in %s\n", adapter, baseDir, len(files), out)
		return nil
	})
}
