package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
)

// roundTrip publishes an event and consumes it back through a durable
// consumer: the consumer dials its own connection, so this checks that
// every connection the bus opens carries the credentials.
func roundTrip(t *testing.T, b *bus.Bus) {
	t.Helper()
	ctx := t.Context()
	col := newCollector()
	sub, err := b.Subscribe(ctx, bus.Consumer{Name: "auth", Subjects: []string{events.AllRunEvents}, Handler: col.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	runID := events.NewRunID()
	env := failed(t, runID, "x")
	if err := b.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	if d := col.next(t); d.Envelope.ID != env.ID {
		t.Fatalf("got %s, want %s", d.Envelope.ID, env.ID)
	}
}

func connect(url string, creds bus.Credentials) (*bus.Bus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return bus.Connect(ctx, url, bus.Options{Name: "auth-test", Credentials: creds})
}

func start(t *testing.T, opts bus.EmbeddedOptions) *bus.Embedded {
	t.Helper()
	if opts.Dir == "" && opts.ConfigFile == "" {
		opts.Dir = t.TempDir()
	}
	srv, err := bus.StartEmbedded(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func TestUserPasswordIsRequiredWhenSet(t *testing.T) {
	srv := start(t, bus.EmbeddedOptions{Users: []bus.User{{Name: "eft", Password: "s3cret"}}})
	for name, creds := range map[string]bus.Credentials{
		"none":           {},
		"wrong password": {User: "eft", Password: "guess"},
		"unknown user":   {User: "mallory", Password: "s3cret"},
	} {
		if b, err := connect(srv.URL(), creds); err == nil {
			b.Close()
			t.Fatalf("%s: connected without the right credentials", name)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("%s: error %v does not say authorization failed", name, err)
		}
	}
	b, err := connect(srv.URL(), bus.Credentials{User: "eft", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	roundTrip(t, b)

	// The URL form works too.
	u := strings.Replace(srv.URL(), "nats://", "nats://eft:s3cret@", 1)
	b2, err := connect(u, bus.Credentials{})
	if err != nil {
		t.Fatalf("user:password in the URL: %v", err)
	}
	b2.Close()
}

// selfSigned writes a CA and a server certificate for 127.0.0.1 signed by
// it, and a client certificate signed by the same CA.
func selfSigned(t *testing.T) (caFile, certFile, keyFile, clientCert, clientKey string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "eft test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	certFile, keyFile = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

func TestTLSWithASelfSignedCertificate(t *testing.T) {
	caFile, certFile, keyFile, _, _ := selfSigned(t)
	srv := start(t, bus.EmbeddedOptions{TLSCertFile: certFile, TLSKeyFile: keyFile})

	if b, err := connect(srv.URL(), bus.Credentials{}); err == nil {
		b.Close()
		t.Fatal("connected to a TLS server without trusting its certificate")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %v does not name the certificate", err)
	}
	tlsURL := strings.Replace(srv.URL(), "nats://", "tls://", 1)
	b, err := connect(tlsURL, bus.Credentials{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	roundTrip(t, b)
}

func TestMutualTLSRequiresAClientCertificate(t *testing.T) {
	caFile, certFile, keyFile, clientCert, clientKey := selfSigned(t)
	srv := start(t, bus.EmbeddedOptions{TLSCertFile: certFile, TLSKeyFile: keyFile, TLSClientCAFile: caFile})
	if b, err := connect(srv.URL(), bus.Credentials{CAFile: caFile}); err == nil {
		b.Close()
		t.Fatal("connected without a client certificate")
	}
	b, err := connect(srv.URL(), bus.Credentials{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	roundTrip(t, b)
}

// A nats-server config file with an account that has JetStream, a
// password user and an nkey user, as infra/nats.conf sets up.
func TestConfigFileAccountsWithPasswordAndNKeyUsers(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "trainer.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_EFT_PASSWORD", "from-the-environment")
	conf := filepath.Join(dir, "nats.conf")
	text := `
listen: 127.0.0.1:-1
jetstream { store_dir: "` + filepath.Join(dir, "js") + `" }
accounts {
  EFT {
    jetstream: enabled
    users: [
      { user: eft, password: $TEST_EFT_PASSWORD }
      { nkey: ` + pub + ` }
    ]
  }
}
`
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := start(t, bus.EmbeddedOptions{ConfigFile: conf})
	if b, err := connect(srv.URL(), bus.Credentials{}); err == nil {
		b.Close()
		t.Fatal("connected without credentials")
	}
	b, err := connect(srv.URL(), bus.Credentials{User: "eft", Password: "from-the-environment"})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, b)
	b.Close()
	nb, err := connect(srv.URL(), bus.Credentials{NKeySeedFile: seedFile})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	// Same account: the stream the password user filled is visible.
	last, err := nb.LastSequence(t.Context(), bus.EventsStream)
	if err != nil || last != 1 {
		t.Fatalf("nkey user sees EFT_EVENTS at %d (%v), want 1", last, err)
	}
}

func TestCredentialsThatCannotWorkAreRefusedBeforeDialling(t *testing.T) {
	srv := start(t, bus.EmbeddedOptions{})
	for _, tc := range []struct {
		creds bus.Credentials
		want  string
	}{
		{bus.Credentials{User: "eft"}, "user and password go together"},
		{bus.Credentials{User: "eft", Password: "x", Token: "t"}, "not user/password and token"},
		{bus.Credentials{CredsFile: "/nonexistent/eft.creds"}, "creds file"},
		{bus.Credentials{NKeySeedFile: "/nonexistent/eft.nk"}, "nkey seed /nonexistent/eft.nk"},
		{bus.Credentials{CAFile: "/nonexistent/ca.pem"}, "CA file"},
		{bus.Credentials{CertFile: "c.pem"}, "both its certificate and its key"},
	} {
		b, err := connect(srv.URL(), tc.creds)
		if err == nil {
			b.Close()
			t.Fatalf("%+v: connected", tc.creds)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%+v: error %q does not say %q", tc.creds, err, tc.want)
		}
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	t.Setenv(bus.EnvNATSUser, "u")
	t.Setenv(bus.EnvNATSPassword, "p")
	t.Setenv(bus.EnvNATSCA, "/etc/eft/ca.pem")
	got := bus.CredentialsFromEnv()
	if got != (bus.Credentials{User: "u", Password: "p", CAFile: "/etc/eft/ca.pem"}) {
		t.Fatalf("%+v", got)
	}
}
