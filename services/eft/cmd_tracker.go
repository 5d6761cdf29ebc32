package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/services/tracker"
	"github.com/eftml/eft/shared/bus"
)

func init() { addCommand(newTrackerCommand) }

func newTrackerCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tracker", Short: "Manage the run store"}
	cmd.AddCommand(&cobra.Command{
		Use:   "rebuild",
		Short: "Delete the run store and rebuild it by replaying EFT_EVENTS",
		Long: `Delete the tracker's store under --home and replay every event of the
EFT_EVENTS stream into a new one (from --nats, else from the embedded server's
state under --home). No tracker may be running on this home meanwhile.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			b, stop, err := connectOrEmbed(ctx, g, "eft-tracker-rebuild")
			if err != nil {
				return err
			}
			defer stop()
			store, err := tracker.Rebuild(ctx, b, filepath.Join(trackerDir(g.Home), "store"))
			if err != nil {
				return err
			}
			defer store.Close()
			runs, err := store.Runs()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rebuilt %d runs from %d stream messages\n", len(runs), store.Position())
			return nil
		},
	})
	return cmd
}

// connectOrEmbed connects to --nats, or starts the embedded server on the
// home's state (for commands that only read or write the log).
func connectOrEmbed(ctx context.Context, g *globals, name string) (*bus.Bus, func(), error) {
	url := g.NATSURL
	var srv *bus.Embedded
	if url == "" {
		var err error
		srv, err = bus.StartEmbedded(bus.EmbeddedOptions{Dir: filepath.Join(g.Home, "nats")})
		if err != nil {
			return nil, nil, err
		}
		url = srv.URL()
	}
	b, err := bus.Connect(ctx, url, bus.Options{Name: name, Credentials: g.natsAuth(srv)})
	if err != nil {
		if srv != nil {
			srv.Shutdown()
		}
		return nil, nil, err
	}
	return b, func() {
		_ = b.Close()
		if srv != nil {
			srv.Shutdown()
		}
	}, nil
}
