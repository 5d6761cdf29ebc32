package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/events"
)

func init() { addCommand(newCancelCommand) }

func newCancelCommand(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Ask every stage to stop a run (publishes RunCancelled)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !events.ValidRunID(args[0]) {
				return fmt.Errorf("%q is not a run id", args[0])
			}
			b, stop, err := connectOrEmbed(cmd.Context(), g, "eft-cancel")
			if err != nil {
				return err
			}
			defer stop()
			_, err = b.PublishNew(cmd.Context(), args[0], "eft", events.RunCancelled{Reason: reason, RequestedBy: "eft cancel"})
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "cancelled by the user", "why, for the run's record")
	return cmd
}
