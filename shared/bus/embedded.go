package bus

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configure an in-process NATS server. The zero value (apart
// from Dir) is a JetStream server on a random loopback port, without
// authentication.
type EmbeddedOptions struct {
	// Dir holds the JetStream file store (a "jetstream" folder is made in it).
	// It may be empty when ConfigFile sets jetstream.store_dir.
	Dir string
	// Host and Port to listen on; "" means 127.0.0.1 and 0 a random free port
	// (or what ConfigFile says).
	Host string
	Port int
	// Logs, when true, lets the server log to stderr.
	Logs bool

	// ConfigFile is a nats-server configuration file (accounts, users,
	// nkeys, TLS, limits); the fields here override what it sets.
	ConfigFile string
	// Users may connect with these names and passwords, with every
	// permission, in the server's default account. Empty: whatever ConfigFile
	// says, no authentication without one.
	Users []User
	// TLSCertFile and TLSKeyFile make the server speak TLS only; clients
	// trust it through Credentials.CAFile. TLSClientCAFile, when set, also
	// requires clients to present a certificate it signed.
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// MonitorPort serves NATS's HTTP monitoring (/healthz, /varz) on
	// MonitorHost (default Host): 0 means off (or what ConfigFile says), -1 a
	// random port.
	MonitorPort int
	MonitorHost string
	// ServerName names the server in its logs and in JetStream (default
	// "eft-embedded").
	ServerName string
}

// User is a NATS user with a password.
type User struct {
	Name, Password string
}

// Embedded is a NATS JetStream server running in this process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a JetStream-enabled NATS server whose state lives under
// opts.Dir, and waits until it accepts connections.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	sopts, err := opts.serverOptions()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(sopts.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("bus: embedded server store: %w", err)
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	if opts.Logs {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("bus: embedded server in %s did not become ready in 30s (is another eft using this home, or the port taken?)", sopts.StoreDir)
	}
	return &Embedded{srv: srv}, nil
}

// serverOptions builds the server's options: ConfigFile's, then ours.
func (opts EmbeddedOptions) serverOptions() (*server.Options, error) {
	sopts := &server.Options{}
	if opts.ConfigFile != "" {
		var err error
		if sopts, err = server.ProcessConfigFile(opts.ConfigFile); err != nil {
			return nil, fmt.Errorf("bus: NATS config %s: %w", opts.ConfigFile, err)
		}
	}
	fromFile := opts.ConfigFile != ""
	switch {
	case opts.Dir != "":
		sopts.StoreDir = filepath.Join(opts.Dir, "jetstream")
	case sopts.StoreDir == "":
		return nil, fmt.Errorf("bus: embedded server needs a directory for its store")
	}
	if opts.ServerName != "" || sopts.ServerName == "" {
		sopts.ServerName = cmp.Or(opts.ServerName, "eft-embedded")
	}
	if opts.Host != "" || !fromFile || sopts.Host == "" {
		sopts.Host = cmp.Or(opts.Host, "127.0.0.1")
	}
	switch {
	case opts.Port != 0:
		sopts.Port = opts.Port
	case !fromFile || sopts.Port == 0:
		sopts.Port = server.RANDOM_PORT
	}
	if opts.MonitorPort != 0 {
		sopts.HTTPHost = cmp.Or(opts.MonitorHost, sopts.Host)
		sopts.HTTPPort = opts.MonitorPort
	}
	sopts.JetStream = true
	sopts.NoSigs = true
	sopts.NoLog = !opts.Logs
	// Events are small, but job and artifact chunks are not; 8 MiB leaves
	// room for the object store's chunking without raising NATS's ceiling.
	if sopts.MaxPayload < 8<<20 {
		sopts.MaxPayload = 8 << 20
	}
	if len(opts.Users) > 0 {
		if sopts.Nkeys != nil || len(sopts.Accounts) > 0 {
			return nil, fmt.Errorf("bus: %s defines accounts or nkeys; give users there, not as options", opts.ConfigFile)
		}
		sopts.Users = nil
		for _, u := range opts.Users {
			if u.Name == "" || u.Password == "" {
				return nil, fmt.Errorf("bus: a NATS user needs a name and a password")
			}
			sopts.Users = append(sopts.Users, &server.User{Username: u.Name, Password: u.Password})
		}
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, fmt.Errorf("bus: NATS TLS needs both a certificate and a key file")
	}
	if opts.TLSCertFile != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: opts.TLSCertFile, KeyFile: opts.TLSKeyFile,
			CaFile: opts.TLSClientCAFile, Verify: opts.TLSClientCAFile != "",
		})
		if err != nil {
			return nil, fmt.Errorf("bus: NATS TLS: %w", err)
		}
		sopts.TLS, sopts.TLSConfig, sopts.TLSVerify = true, tc, opts.TLSClientCAFile != ""
		sopts.TLSTimeout = 2
	}
	return sopts, nil
}

// URL is the client URL to connect to, like nats://127.0.0.1:41234.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits until it has; the file store is kept.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// MonitorURL is the base URL of the HTTP monitoring endpoint ("" when off).
func (e *Embedded) MonitorURL() string {
	addr := e.srv.MonitorAddr()
	if addr == nil {
		return ""
	}
	return "http://" + addr.String()
}

// Ready reports whether the server accepts connections and JetStream is on.
func (e *Embedded) Ready() bool { return e.srv.Running() && e.srv.JetStreamEnabled() }
