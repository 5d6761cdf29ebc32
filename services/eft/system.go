package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/eftml/eft/services/tracker"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/telemetry"
)

// system is a connection to NATS (an embedded server unless --nats is
// given) and the services started on it in this process.
type system struct {
	server  *bus.Embedded // nil with an external server
	bus     *bus.Bus
	tracker *trackerRunner
	// trackerStore is open from the start to the end (the tracker closes it).
	trackerStore *tracker.Store
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	mu           sync.Mutex
	errs         []error
	shutdown     func(context.Context) error
	home         string
	// failed is closed when the first service stops with an error.
	failed   chan struct{}
	failOnce sync.Once
}

// startSystem connects (starting the embedded server under home/nats when
// no URL is set) and starts the named services. The tracker, when named, is
// built first: its store's lock keeps two eft processes off one home.
func startSystem(ctx context.Context, g *globals, producer string, names []string) (*system, error) {
	return startSystemWith(ctx, g, producer, names, "")
}

// startSystemWith is startSystem with the tracker API on trackerHTTP.
func startSystemWith(ctx context.Context, g *globals, producer string, names []string, trackerHTTP string) (*system, error) {
	s := &system{home: g.Home, failed: make(chan struct{})}
	_, shutdown, err := telemetry.Setup(telemetry.Config{ServiceName: producer, Exporter: os.Getenv("EFT_TRACES"), Writer: os.Stderr})
	if err != nil {
		return nil, err
	}
	s.shutdown = shutdown
	if err := os.MkdirAll(g.Home, 0o755); err != nil {
		return nil, fmt.Errorf("home %s: %w", g.Home, err)
	}
	d := deps{Home: g.Home, TrackerHTTP: trackerHTTP, TrainerPool: g.TrainerPool, DataRoot: g.DataRoot, TrainerDevice: g.TrainerDevice, Trainers: g.Trainers}
	runners := make([]runner, len(names))
	if slices.Contains(names, "tracker") {
		if d.TrackerStore, err = tracker.OpenStore(filepath.Join(trackerDir(g.Home), "store")); err != nil {
			s.close()
			return nil, err
		}
		s.trackerStore = d.TrackerStore
	}
	url := g.NATSURL
	if url == "" {
		s.server, err = bus.StartEmbedded(bus.EmbeddedOptions{Dir: filepath.Join(g.Home, "nats")})
		if err != nil {
			s.close()
			return nil, err
		}
		url = s.server.URL()
		_ = os.WriteFile(filepath.Join(g.Home, "nats.url"), []byte(url+"\n"), 0o644)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s.bus, err = bus.Connect(ctx, url, bus.Options{Name: producer, Logger: logger, Credentials: g.natsAuth(s.server)})
	if err != nil {
		s.close()
		return nil, err
	}
	d.Bus = s.bus
	for i, name := range names {
		if runners[i], err = buildService(name, d); err != nil {
			s.close()
			return nil, err
		}
		if t, ok := runners[i].(*trackerRunner); ok {
			s.tracker = t
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	for i, r := range runners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := r.Run(runCtx); err != nil {
				s.mu.Lock()
				s.errs = append(s.errs, fmt.Errorf("%s: %w", names[i], err))
				s.mu.Unlock()
				s.failOnce.Do(func() { close(s.failed) })
			}
		}()
	}
	return s, nil
}

// settle lets the tracker catch up with the stream before the services
// stop, so that `eft runs` afterwards shows everything that happened.
func (s *system) settle() {
	if s.tracker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last, err := s.bus.LastSequence(ctx, bus.EventsStream)
	if err == nil {
		err = s.tracker.svc.WaitFor(ctx, last)
	}
	if err != nil {
		slog.Warn("eft: the tracker did not catch up before stopping; it will on its next start", "error", err)
	}
}

// close releases what a failed start had opened.
func (s *system) close() {
	if s.tracker != nil {
		_ = s.tracker.ln.Close()
	}
	if s.trackerStore != nil {
		_ = s.trackerStore.Close()
	}
	if s.bus != nil {
		_ = s.bus.Close()
	}
	if s.server != nil {
		s.server.Shutdown()
	}
	if s.shutdown != nil {
		_ = s.shutdown(context.Background())
	}
}

// Stop stops the services, then the connection and the embedded server, and
// returns the first error a service stopped with.
func (s *system) Stop() error {
	s.settle()
	s.cancel()
	s.wg.Wait()
	_ = s.bus.Close()
	if s.server != nil {
		s.server.Shutdown()
		_ = os.Remove(filepath.Join(s.home, "nats.url"))
	}
	_ = s.shutdown(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		return s.errs[0]
	}
	return nil
}
