package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/shared/config"
)

func init() { addCommand(newConfigCommand) }

func newConfigCommand(g *globals) *cobra.Command {
	return configCommand(g, &cobra.Command{
		Use:   "config CONFIG [--key value ...]",
		Short: "Validate a config and print it resolved, with every default filled in",
		Long: `Validate a config the way "eft train" would (with the same --key value
overrides) and print the resolved config as YAML. Warnings go to stderr; on
errors nothing is printed to stdout, each error is listed with its file, line
and key, and the exit status is 1.`,
	}, func(cmd *cobra.Command, path string, overrides []string) error {
		cfg, warnings, err := config.Load(path, overrides)
		for _, w := range warnings {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
		}
		if err != nil {
			var cerr *config.Error
			if errors.As(err, &cerr) {
				for _, is := range cerr.Issues {
					fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", is)
				}
				return exitCode(1)
			}
			return err
		}
		out, err := cfg.YAML()
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(out)
		return err
	})
}
