package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/shared/config"
)

// What the commands that work on a model on this machine (inference,
// evaluate, merge-lora) share: reading the config as eft train does, and
// finding the base model and the trained adapter.

// loadLocalConfig reads a config with its overrides, printing warnings and
// each error (file, line, key) to stderr.
func loadLocalConfig(stderr io.Writer, path string, overrides []string) (*config.Config, error) {
	cfg, warnings, err := config.Load(path, overrides)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			for _, is := range cerr.Issues {
				fmt.Fprintf(stderr, "error: %s\n", is)
			}
			return nil, exitCode(1)
		}
		return nil, err
	}
	return cfg, nil
}

// adapterDir is the adapter a command applies: the flag, else
// lora_model_dir, else — for an adapter config — output_dir when a run left
// an adapter there; "" for none, and for the flag "-" (a model given with
// --base-model is used as it is).
func adapterDir(cfg *config.Config, flag string) string {
	wd, _ := os.Getwd()
	switch {
	case flag == "-":
		return ""
	case flag != "":
		return flag
	case cfg.LoraModelDir != "":
		return runspec.LocalPath(cfg.LoraModelDir, wd)
	case cfg.Adapter != "":
		out := runspec.LocalPath(cfg.OutputDir, wd)
		if _, err := os.Stat(out + "/adapter_config.json"); err == nil {
			return out
		}
	}
	return ""
}
