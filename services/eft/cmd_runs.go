package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/services/tracker"
)

func init() { addCommand(newRunsCommand) }

func newRunsCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := openRunStore(g)
			if err != nil {
				return err
			}
			defer rs.Close()
			runs, err := rs.Runs()
			if err != nil {
				return err
			}
			if asJSON {
				return writeIndented(cmd.OutOrStdout(), runs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tSTATUS\tSTEP\tCONFIG\tUPDATED\tNOTE")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, steps(r), r.ConfigFile, r.UpdatedAt.Local().Format("2006-01-02 15:04:05"), note(r))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use:   "show RUN",
		Short: "Show one run: its status and event timeline",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := openRunStore(g)
			if err != nil {
				return err
			}
			defer rs.Close()
			d, err := rs.Detail(args[0], 0)
			if err != nil {
				return err
			}
			if asJSON {
				return writeIndented(cmd.OutOrStdout(), d)
			}
			out := cmd.OutOrStdout()
			r := d.Run
			fmt.Fprintf(out, "run      %s\nstatus   %s\nconfig   %s\nstep     %s\nevents   %d (+%d metric events, %d points)\n",
				r.ID, r.Status, r.ConfigFile, steps(r), r.Events, r.MetricEvents, r.MetricPoints)
			if r.TraceID != "" {
				fmt.Fprintf(out, "trace    %s\n", r.TraceID)
			}
			fmt.Fprintln(out)
			printTimeline(out, d.Events)
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(show)
	return cmd
}

func steps(r tracker.Run) string {
	switch {
	case r.TotalSteps > 0:
		return fmt.Sprintf("%d/%d", r.Step, r.TotalSteps)
	case r.Step > 0:
		return fmt.Sprint(r.Step)
	}
	return "-"
}

func note(r tracker.Run) string {
	switch {
	case r.Failure != nil:
		return r.Failure.Stage + ": " + firstLine(r.Failure.Error)
	case r.CancelReason != "":
		return r.CancelReason
	case r.LastMetrics != nil:
		if l, ok := r.LastMetrics["loss"]; ok {
			return "loss " + num(l)
		}
	}
	return ""
}

func printTimeline(out io.Writer, evs []tracker.Event) {
	for _, e := range evs {
		for _, line := range describe(e.Type, e.Payload) {
			fmt.Fprintf(out, "%s %s\n", stamp(e.Time), line)
		}
	}
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
