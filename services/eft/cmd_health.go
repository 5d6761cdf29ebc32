package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/eftml/eft/shared/bus"
)

func init() { addCommand(newHealthCommand) }

// newHealthCommand is `eft health`: the probe compose's health checks run
// inside images that hold nothing but the eft binary.
func newHealthCommand(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health URL...",
		Short: "Check that services answer: exit 0 when every URL is healthy",
		Long: `Check each URL and exit 0 when all are healthy, 1 otherwise:
  http(s)://...        answers 2xx (eft serve --health, the tracker's /api/health,
                       NATS monitoring's /healthz)
  nats://... tls://... accepts a connection with the --nats-* credentials and
                       JetStream answers`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, u := range args {
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				err := probe(ctx, u, g.NATSAuth)
				cancel()
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", u, err)
					bad++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", u)
			}
			if bad > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "time allowed to each URL")
	return cmd
}

func probe(ctx context.Context, url string, creds bus.Credentials) error {
	switch {
	case strings.HasPrefix(url, "http://"), strings.HasPrefix(url, "https://"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	case strings.HasPrefix(url, "nats://"), strings.HasPrefix(url, "tls://"):
		b, err := bus.Connect(ctx, url, bus.Options{Name: "eft-health", Credentials: creds})
		if err != nil {
			return err
		}
		defer b.Close()
		_, err = b.JetStream().AccountInfo(ctx)
		return err
	}
	return fmt.Errorf("not an http(s), nats or tls URL")
}

// health says whether this process's services are working: connected to
// NATS and none stopped with an error.
func (s *system) health() error {
	if st := s.bus.Conn().Status(); st != nats.CONNECTED {
		return fmt.Errorf("NATS connection %s", st)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// serveHealth answers GET /healthz on addr with 200 {"status":"ok"} while
// sys is healthy and 503 with the reason otherwise, until ctx ends.
func serveHealth(ctx context.Context, addr string, sys *system) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--health: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := sys.health(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "unhealthy", "error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/healthz", nil
}
