package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/shared/bus"
)

// newServeNATSCommand is `eft serve nats`: the embedded NATS JetStream
// server as a process of its own, so that a compose stack or a cluster of
// machines needs no broker image. The services join it with `eft serve X
// --nats URL`.
func newServeNATSCommand(g *globals) *cobra.Command {
	var (
		configFile, listen, monitor, store string
		tlsCert, tlsKey, tlsClientCA       string
		noAuth, logs                       bool
	)
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the NATS JetStream server eft's services connect to",
		Long: `Run eft's embedded NATS JetStream server as this process, until interrupted.

Authentication: a nats-server config file (--config) with accounts, users or
nkeys (infra/nats.conf); or, without --config, one user from $EFT_NATS_USER
and $EFT_NATS_PASSWORD (the same variables the services connect with).
Without either, the server only starts on a loopback address, or with --no-auth.

TLS: --tls-cert and --tls-key (clients trust the certificate with --nats-ca);
--tls-client-ca also requires client certificates signed by that CA.

The JetStream file store is kept in --store (default <home>/nats), so a
restarted server carries on where it stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := bus.EmbeddedOptions{
				ConfigFile: configFile, Logs: logs, ServerName: "eft-nats",
				TLSCertFile: tlsCert, TLSKeyFile: tlsKey, TLSClientCAFile: tlsClientCA,
			}
			if store == "" && configFile == "" {
				store = filepath.Join(g.Home, "nats")
			}
			opts.Dir = store
			if cmd.Flags().Changed("listen") || configFile == "" {
				host, port, err := splitHostPort(listen)
				if err != nil {
					return fmt.Errorf("--listen %q: %w", listen, err)
				}
				opts.Host, opts.Port = host, port
			}
			if monitor != "" {
				host, port, err := splitHostPort(monitor)
				if err != nil {
					return fmt.Errorf("--monitor %q: %w", monitor, err)
				}
				opts.MonitorHost, opts.MonitorPort = host, port
			}
			// Without --config, the one user comes from the environment; a
			// config file names its users itself (it may read the same
			// variables: password: $EFT_NATS_PASSWORD).
			if env := bus.CredentialsFromEnv(); configFile == "" && (env.User != "" || env.Password != "") {
				if env.User == "" || env.Password == "" {
					return fmt.Errorf("set both %s and %s, or neither", bus.EnvNATSUser, bus.EnvNATSPassword)
				}
				opts.Users = []bus.User{{Name: env.User, Password: env.Password}}
			}
			if configFile == "" && len(opts.Users) == 0 && !noAuth && !isLoopback(opts.Host) {
				return fmt.Errorf("refusing to serve NATS on %s without authentication: set %s and %s, give --config with accounts, or say --no-auth",
					opts.Host, bus.EnvNATSUser, bus.EnvNATSPassword)
			}
			srv, err := bus.StartEmbedded(opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "nats serving on %s\n", srv.URL())
			if m := srv.MonitorURL(); m != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "nats monitoring on %s (/healthz)\n", m)
			}
			_ = os.WriteFile(filepath.Join(g.Home, "nats.url"), []byte(srv.URL()+"\n"), 0o644)
			<-cmd.Context().Done()
			srv.Shutdown()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "nats-server configuration file (accounts, users, nkeys, TLS, limits); flags override it")
	f.StringVar(&listen, "listen", "127.0.0.1:4222", "client address; 0.0.0.0:4222 to accept other machines")
	f.StringVar(&monitor, "monitor", "", "HTTP monitoring address (/healthz for health checks), like 127.0.0.1:8222")
	f.StringVar(&store, "store", "", "JetStream file store directory (default <home>/nats)")
	f.StringVar(&tlsCert, "tls-cert", "", "server certificate (PEM): clients must use TLS")
	f.StringVar(&tlsKey, "tls-key", "", "server certificate key (PEM)")
	f.StringVar(&tlsClientCA, "tls-client-ca", "", "CA (PEM) client certificates must be signed by (mutual TLS)")
	f.BoolVar(&noAuth, "no-auth", false, "allow a server without authentication on a non-loopback address")
	f.BoolVar(&logs, "logs", false, "print the NATS server's log")
	return cmd
}

func splitHostPort(addr string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, errors.New("the port must be a number (0 or -1: any free port)")
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
