package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Commands that take a config (train, submit, config) accept Axolotl-style
// overrides anywhere after it: `eft train cfg.yml --learning-rate 2e-4
// --sample-packing`. Cobra cannot know those flags (the config schema does),
// so these commands disable cobra's flag parsing and split the command line
// here: flags the command declares (its own and the root's) are parsed by
// pflag as usual, every other --flag (with its value) is an override, in order.
func splitConfigArgs(cmd *cobra.Command, args []string) (positional, overrides []string, err error) {
	flags := cmd.Flags()
	flags.AddFlagSet(cmd.InheritedFlags())
	var ours []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			overrides = append(overrides, args[i+1:]...)
			break
		}
		if a == "-h" || a == "--help" {
			return nil, nil, pflag.ErrHelp
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var f *pflag.Flag
		if strings.HasPrefix(a, "--") {
			f = flags.Lookup(name)
		} else if len(name) == 1 {
			f = flags.ShorthandLookup(name)
		}
		if f == nil {
			// An override: it takes the next token as its value unless that is
			// another flag (boolean overrides stand alone).
			overrides = append(overrides, a)
			if !hasValue && i+1 < len(args) && !isFlag(args[i+1]) {
				overrides = append(overrides, args[i+1])
				i++
			}
			continue
		}
		ours = append(ours, a)
		if !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
			ours = append(ours, args[i+1])
			i++
		}
	}
	if err := flags.Parse(ours); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	return positional, overrides, nil
}

// isFlag tells a flag from a value such as "-1" or "-3e-4".
func isFlag(s string) bool {
	if !strings.HasPrefix(s, "-") || s == "-" {
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	return err != nil
}

// configCommand sets cmd up to take "CONFIG [overrides...]" and calls run
// with the config path and the overrides, after the shared settings resolved.
func configCommand(g *globals, cmd *cobra.Command, run func(cmd *cobra.Command, path string, overrides []string) error) *cobra.Command {
	cmd.DisableFlagParsing = true
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		positional, overrides, err := splitConfigArgs(cmd, args)
		if err == pflag.ErrHelp {
			return cmd.Help()
		}
		if err != nil {
			return err
		}
		if len(positional) != 1 {
			return fmt.Errorf("%s takes one config file, got %d arguments %q (overrides are --key value)", cmd.CommandPath(), len(positional), positional)
		}
		if err := g.resolve(); err != nil {
			return err
		}
		return run(cmd, positional[0], overrides)
	}
	return cmd
}
