package main

import (
	"time"

	"github.com/spf13/cobra"
)

func init() { addCommand(newLogsCommand) }

func newLogsCommand(g *globals) *cobra.Command {
	var followRun bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "logs RUN",
		Short: "Print a run's events; -f keeps printing new ones until the run ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := openRunStore(g)
			if err != nil {
				return err
			}
			defer rs.Close()
			var after uint64
			for {
				d, err := rs.Detail(args[0], after)
				if err != nil {
					return err
				}
				printTimeline(cmd.OutOrStdout(), d.Events)
				if n := len(d.Events); n > 0 {
					after = d.Events[n-1].Seq
				}
				if !followRun || d.Run.Terminal() {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&followRun, "follow", "f", false, "keep printing new events until the run ends")
	cmd.Flags().DurationVar(&every, "poll", 500*time.Millisecond, "how often -f asks the tracker")
	return cmd
}
