package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/shared/bus"
)

// globals are the settings every command shares, filled from the root's
// persistent flags and the environment before a command runs.
type globals struct {
	// Home is where eft keeps local state: the embedded NATS store, the
	// tracker's run store, cached artifacts. --home, else $EFT_HOME, else ./.eft.
	Home string
	// NATSURL is an external NATS server (--nats, else $EFT_NATS_URL); empty
	// means commands that can run embedded do so.
	NATSURL string
	// Tracker is the tracker's HTTP address (--tracker, else $EFT_TRACKER_URL);
	// empty means "the one running from Home, or Home's store itself".
	Tracker string
	// NATSAuth authenticates to --nats and checks its TLS certificate
	// (--nats-* flags, else the EFT_NATS_* variables).
	NATSAuth bus.Credentials
	// TrainerPool is the pool this process's trainer serves (eft serve
	// --pool); empty: runs that name no trainer_pool.
	TrainerPool string
	// DataRoot, when set, confines the local datasets ingest reads (eft
	// serve --data-root).
	DataRoot string
	// TrainerDevice is where this process's trainer trains: auto, cpu or
	// cuda (eft serve/train --device).
	TrainerDevice string
	// Trainers is how many trainers this process runs (eft train: the
	// run's world_size; otherwise 1).
	Trainers int
}

// commandFactory builds one top-level command. Factories run once per root,
// so tests can build fresh roots.
type commandFactory func(g *globals) *cobra.Command

var commandFactories []commandFactory

// addCommand registers a top-level command; call it from an init function in
// the command's own file (cmd_<name>.go).
func addCommand(f commandFactory) { commandFactories = append(commandFactories, f) }

// exitCode is an error that only sets the exit status: the command has
// already said what went wrong.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "eft",
		Short: "Fine-tune language models from an Axolotl-style config, on an event bus",
		Long: `eft fine-tunes Hugging Face causal language models (full, LoRA, QLoRA) from an
Axolotl-style YAML config. Its stages are services that talk through NATS
JetStream; "eft train" runs all of them in this process on an embedded server.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.resolve()
		},
	}
	flags := root.PersistentFlags()
	flags.StringVar(&g.Home, "home", "", "state directory (default $EFT_HOME, else ./.eft)")
	flags.StringVar(&g.NATSURL, "nats", "", "NATS server URL (default $EFT_NATS_URL; empty: embedded where possible)")
	flags.StringVar(&g.Tracker, "tracker", "", "tracker HTTP URL (default $EFT_TRACKER_URL; empty: the local one)")
	flags.StringVar(&g.NATSAuth.User, "nats-user", "", "NATS user (default $EFT_NATS_USER; the password only from $EFT_NATS_PASSWORD)")
	flags.StringVar(&g.NATSAuth.CredsFile, "nats-creds", "", "NATS .creds file (default $EFT_NATS_CREDS)")
	flags.StringVar(&g.NATSAuth.NKeySeedFile, "nats-nkey", "", "NATS user nkey seed file (default $EFT_NATS_NKEY)")
	flags.StringVar(&g.NATSAuth.CAFile, "nats-ca", "", "PEM CA that signed the NATS server's certificate; turns TLS on (default $EFT_NATS_CA)")
	flags.StringVar(&g.NATSAuth.CertFile, "nats-cert", "", "client certificate for mutual TLS (default $EFT_NATS_CERT)")
	flags.StringVar(&g.NATSAuth.KeyFile, "nats-key", "", "client certificate key for mutual TLS (default $EFT_NATS_KEY)")
	for _, f := range commandFactories {
		root.AddCommand(f(g))
	}
	return root
}

// resolve fills what the flags left empty from the environment and defaults.
func (g *globals) resolve() error {
	if g.Home == "" {
		g.Home = os.Getenv("EFT_HOME")
	}
	if g.Home == "" {
		g.Home = ".eft"
	}
	abs, err := filepath.Abs(g.Home)
	if err != nil {
		return fmt.Errorf("home %q: %w", g.Home, err)
	}
	g.Home = abs
	if g.NATSURL == "" {
		g.NATSURL = os.Getenv("EFT_NATS_URL")
	}
	if g.Tracker == "" {
		g.Tracker = os.Getenv("EFT_TRACKER_URL")
	}
	env := bus.CredentialsFromEnv()
	a := &g.NATSAuth
	a.User, a.Password, a.Token = cmp.Or(a.User, env.User), cmp.Or(a.Password, env.Password), cmp.Or(a.Token, env.Token)
	a.CredsFile, a.NKeySeedFile = cmp.Or(a.CredsFile, env.CredsFile), cmp.Or(a.NKeySeedFile, env.NKeySeedFile)
	a.CAFile, a.CertFile, a.KeyFile = cmp.Or(a.CAFile, env.CAFile), cmp.Or(a.CertFile, env.CertFile), cmp.Or(a.KeyFile, env.KeyFile)
	return nil
}

// natsAuth is what a connection authenticates with: nothing for the
// embedded server this process started (it has no users), else NATSAuth.
func (g *globals) natsAuth(embedded *bus.Embedded) bus.Credentials {
	if embedded != nil {
		return bus.Credentials{}
	}
	return g.NATSAuth
}
