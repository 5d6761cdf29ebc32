package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/telemetry"
)

func init() { addCommand(newSubmitCommand) }

func newSubmitCommand(g *globals) *cobra.Command {
	var followRun bool
	cmd := configCommand(g, &cobra.Command{
		Use:   "submit CONFIG --nats URL [--key value ...]",
		Short: "Publish a run to a running eft cluster and print its run id",
	}, func(cmd *cobra.Command, path string, overrides []string) error {
		if g.NATSURL == "" {
			return errors.New("submit needs a running cluster: --nats URL or $EFT_NATS_URL")
		}
		req, err := newRunRequest(path, overrides)
		if err != nil {
			return err
		}
		_, shutdown, err := telemetry.Setup(telemetry.Config{ServiceName: "eft-submit"})
		if err != nil {
			return err
		}
		defer shutdown(cmd.Context())
		ctx, span := otel.Tracer("github.com/eftml/eft/services/eft").Start(cmd.Context(), "eft submit")
		defer span.End()
		b, err := bus.Connect(ctx, g.NATSURL, bus.Options{Name: "eft-submit", Credentials: g.NATSAuth})
		if err != nil {
			return err
		}
		defer b.Close()
		env, err := b.PublishNew(ctx, events.NewRunID(), "eft", req)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), env.RunID)
		if !followRun {
			return nil
		}
		w := newRunWatcher(b, req, cmd.OutOrStdout())
		if err := follow(ctx, b, env.RunID, w.handle); err != nil {
			return err
		}
		return w.result
	})
	cmd.Flags().BoolVarP(&followRun, "follow", "f", false, "follow the run's events until it ends")
	return cmd
}
