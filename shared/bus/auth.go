package bus

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// Credentials say how a client proves who it is to NATS and how it checks
// the server. The zero value connects without authentication and, on a
// tls:// URL, trusts the system's certificate authorities. At most one of
// User/Password, Token, CredsFile and NKeySeedFile may be set; a URL of the
// form nats://user:password@host also works on its own.
type Credentials struct {
	// User and Password of a server user (accounts { A { users: [...] } }).
	User, Password string
	// Token is a server's authorization token.
	Token string
	// CredsFile is a decentralized-auth .creds file (user JWT + nkey seed).
	CredsFile string
	// NKeySeedFile holds a user nkey seed ("SU..."); the server knows its public key.
	NKeySeedFile string
	// CAFile is a PEM file of the certificate authorities that signed the
	// server's certificate (a self-signed one, in a small deployment). Setting
	// it turns TLS on.
	CAFile string
	// CertFile and KeyFile are a client certificate, for servers that verify
	// clients (mutual TLS).
	CertFile, KeyFile string
}

// Environment variables CredentialsFromEnv reads. The eft CLI's --nats-*
// flags override them.
const (
	EnvNATSUser     = "EFT_NATS_USER"
	EnvNATSPassword = "EFT_NATS_PASSWORD"
	EnvNATSToken    = "EFT_NATS_TOKEN"
	EnvNATSCreds    = "EFT_NATS_CREDS"
	EnvNATSNKey     = "EFT_NATS_NKEY"
	EnvNATSCA       = "EFT_NATS_CA"
	EnvNATSCert     = "EFT_NATS_CERT"
	EnvNATSKey      = "EFT_NATS_KEY"
)

// CredentialsFromEnv reads credentials from the EFT_NATS_* variables.
func CredentialsFromEnv() Credentials {
	return Credentials{
		User:         os.Getenv(EnvNATSUser),
		Password:     os.Getenv(EnvNATSPassword),
		Token:        os.Getenv(EnvNATSToken),
		CredsFile:    os.Getenv(EnvNATSCreds),
		NKeySeedFile: os.Getenv(EnvNATSNKey),
		CAFile:       os.Getenv(EnvNATSCA),
		CertFile:     os.Getenv(EnvNATSCert),
		KeyFile:      os.Getenv(EnvNATSKey),
	}
}

// IsZero reports whether no credential or TLS setting is given.
func (c Credentials) IsZero() bool { return c == Credentials{} }

// natsOptions turns the credentials into connection options, checking that
// they make sense together and that the files they name can be read.
func (c Credentials) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	kinds := []string{}
	if c.User != "" || c.Password != "" {
		if c.User == "" || c.Password == "" {
			return nil, fmt.Errorf("bus: NATS user and password go together (%s, %s)", EnvNATSUser, EnvNATSPassword)
		}
		kinds = append(kinds, "user/password")
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		kinds = append(kinds, "token")
		opts = append(opts, nats.Token(c.Token))
	}
	if c.CredsFile != "" {
		if err := readable(c.CredsFile, "creds file"); err != nil {
			return nil, err
		}
		kinds = append(kinds, "creds file")
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("bus: NATS nkey seed %s: %w", c.NKeySeedFile, err)
		}
		kinds = append(kinds, "nkey")
		opts = append(opts, opt)
	}
	if len(kinds) > 1 {
		return nil, fmt.Errorf("bus: give one way to authenticate to NATS, not %s", strings.Join(kinds, " and "))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("bus: a NATS client certificate needs both its certificate and its key file")
	}
	if c.CAFile != "" || c.CertFile != "" {
		cfg, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}

func (c Credentials) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("bus: NATS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bus: NATS CA file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("bus: NATS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func readable(path, what string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("bus: NATS %s: %w", what, err)
	}
	return f.Close()
}
