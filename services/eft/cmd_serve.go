package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/trainer/cuda"
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
trainer_pool: NAME. A trainer trains on --device: auto (CUDA when a GPU is
usable, else the CPU), cpu or cuda. When a service stops with an error the process exits
(status 1), so that a supervisor (compose's restart policy) starts it again.`, strings.Join(serviceNames(), ", ")),
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkTrainerDevice(g); err != nil {
				return err
			}
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
	addDeviceFlag(cmd, g)
	cmd.AddCommand(newServeNATSCommand(g))
	return cmd
}

// addDeviceFlag declares --device, where this process's trainer trains and
// its evaluator evaluates.
func addDeviceFlag(cmd *cobra.Command, g *globals) {
	cmd.Flags().StringVar(&g.TrainerDevice, "device", runspec.DeviceAuto,
		"where the trainer trains and the evaluator evaluates: auto (cuda when a GPU is usable, else cpu), cpu or cuda")
}

// checkTrainerDevice refuses an unknown --device, and --device cuda where
// no GPU is usable, before any service starts.
func checkTrainerDevice(g *globals) error {
	d, err := runspec.ParseDevice(g.TrainerDevice)
	if err != nil {
		return fmt.Errorf("--device: %w", err)
	}
	if d == runspec.DeviceCUDA {
		if err := cuda.Available(); err != nil {
			return fmt.Errorf("--device cuda: no usable GPU: %w", err)
		}
	}
	g.TrainerDevice = d
	return nil
}
