package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

func init() { addCommand(newServeCommand) }

func newServeCommand(g *globals) *cobra.Command {
	var httpAddr, healthAddr string
	cmd := &cobra.Command{
		Use:   "serve SERVICE... | all",
		Short: "Run services as this process, against --nats (or the embedded server)",
		Long: fmt.Sprintf(`Run one or more services until interrupted: %s, or "all".
With --nats URL they join that cluster (how compose and multi-machine
deployments run eft); without it they start the embedded server under --home.
The tracker serves its JSON API on --http. "eft serve nats" runs the NATS
server itself. A trainer with --pool NAME takes only the runs whose config says
trainer_pool: NAME. When a service stops with an error the process exits
(status 1), so that a supervisor (compose's restart policy) starts it again.`, strings.Join(serviceNames(), ", ")),
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names := args
			if len(args) == 1 && args[0] == "all" {
				names = serviceNames()
			}
			for _, n := range names {
				if !slices.Contains(serviceNames(), n) {
					return fmt.Errorf("no service %q (services: %s, or all)", n, strings.Join(serviceNames(), ", "))
				}
			}
			sys, err := startSystemWith(cmd.Context(), g, "eft-serve", names, httpAddr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "serving %s on %s\n", strings.Join(names, ", "), sys.bus.URL())
			if healthAddr != "" {
				url, err := serveHealth(cmd.Context(), healthAddr, sys)
				if err != nil {
					_ = sys.Stop()
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "health on %s\n", url)
			}
			if sys.tracker != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "tracker API on %s\n", sys.tracker.URL())
			}
			select {
			case <-cmd.Context().Done():
			case <-sys.failed: // a service stopped: exit, so that a supervisor restarts the process
			}
			err = sys.Stop()
			if errors.Is(err, cmd.Context().Err()) {
				err = nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http", "127.0.0.1:8089", "address of the tracker's HTTP API")
	cmd.Flags().StringVar(&healthAddr, "health", "", "serve GET /healthz on this address (200 while connected and every service runs)")
	cmd.Flags().StringVar(&g.TrainerPool, "pool", "", "trainer pool to take jobs from (runs with that trainer_pool); empty: runs without one")
	cmd.Flags().StringVar(&g.DataRoot, "data-root", "", "confine the local datasets ingest reads to this folder")
	cmd.AddCommand(newServeNATSCommand(g))
	return cmd
}
