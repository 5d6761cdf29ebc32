package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eftml/eft/services/evaluator"
	"github.com/eftml/eft/services/ingest"
	"github.com/eftml/eft/services/merger"
	"github.com/eftml/eft/services/tokenizer"
	"github.com/eftml/eft/services/tracker"
	"github.com/eftml/eft/services/trainer"
	"github.com/eftml/eft/services/validate"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/datasets"
)

// runner is what every service constructor returns: a loop that runs until
// its context ends.
type runner interface {
	Run(ctx context.Context) error
}

// deps are the dependencies a service may take. The all-in-one `eft train`
// and `eft serve NAME` build services through the same table below.
type deps struct {
	Bus *bus.Bus
	// Home is the state directory (the tracker keeps its store under it).
	Home string
	// TrackerHTTP is the address the tracker's API listens on ("127.0.0.1:0": a free port).
	TrackerHTTP string
	// TrackerStore, when set, is the tracker's store, already open (startSystem
	// opens it before anything else: its lock keeps two eft off one home).
	TrackerStore *tracker.Store
	// TrainerPool is the trainer pool the trainer serves ("": the default).
	TrainerPool string
	// DataRoot confines the local datasets ingest reads ("": anywhere).
	DataRoot string
	// TrainerDevice is where the trainer trains and the evaluator
	// evaluates (runspec.Device*).
	TrainerDevice string
	// Trainers is how many trainers to run (0 or 1: one).
	Trainers int
}

// serviceTable lists every service in pipeline order, with its constructor.
// A stage that becomes real changes its line here (or only its package).
var serviceTable = []struct {
	name  string
	build func(d deps) (runner, error)
}{
	{"tracker", newTrackerRunner},
	{"validate", func(d deps) (runner, error) { return validate.New(d.Bus), nil }},
	{"ingest", func(d deps) (runner, error) {
		return ingest.NewWith(d.Bus, ingest.Options{Load: datasets.Options{Root: d.DataRoot}}), nil
	}},
	{"tokenizer", func(d deps) (runner, error) { return tokenizer.New(d.Bus), nil }},
	{"trainer", newTrainerRunner},
	{"evaluator", func(d deps) (runner, error) {
		return evaluator.New(d.Bus, evaluator.Options{ScratchDir: filepath.Join(d.Home, "evaluator"), Device: d.TrainerDevice}), nil
	}},
	{"merger", func(d deps) (runner, error) {
		return merger.New(d.Bus, merger.Options{ScratchDir: filepath.Join(d.Home, "merger")}), nil
	}},
}

func serviceNames() []string {
	names := make([]string, len(serviceTable))
	for i, s := range serviceTable {
		names[i] = s.name
	}
	return names
}

func buildService(name string, d deps) (runner, error) {
	for _, s := range serviceTable {
		if s.name == name {
			return s.build(d)
		}
	}
	return nil, fmt.Errorf("no service %q (services: %s)", name, strings.Join(serviceNames(), ", "))
}

// newTrainerRunner runs d.Trainers trainers (the ranks of an all-in-one
// data-parallel run), each with its own scratch folder and worker name.
func newTrainerRunner(d deps) (runner, error) {
	n := max(d.Trainers, 1)
	if n == 1 {
		return trainer.New(d.Bus, trainer.Options{ScratchDir: filepath.Join(d.Home, "trainer"), Pool: d.TrainerPool, Device: d.TrainerDevice}), nil
	}
	host, _ := os.Hostname()
	var rs runners
	for i := range n {
		rs = append(rs, trainer.New(d.Bus, trainer.Options{
			ScratchDir: filepath.Join(d.Home, "trainer", strconv.Itoa(i)), Pool: d.TrainerPool, Device: d.TrainerDevice,
			Worker: fmt.Sprintf("%s:%d/%d", host, os.Getpid(), i),
		}))
	}
	return rs, nil
}

// runners run together until the first ends; its error is theirs.
type runners []runner

func (rs runners) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(rs))
	for _, r := range rs {
		go func() { errs <- r.Run(ctx) }()
	}
	err := <-errs
	cancel()
	for range len(rs) - 1 {
		<-errs
	}
	return err
}

// trackerRunner runs the tracker with its HTTP API, and writes the API's URL
// to <home>/tracker/api.url while it runs so that `eft runs` finds it.
type trackerRunner struct {
	svc     *tracker.Service
	store   *tracker.Store
	ln      net.Listener
	urlFile string
}

func trackerDir(home string) string { return filepath.Join(home, "tracker") }

func trackerURLFile(home string) string { return filepath.Join(home, "tracker.url") }

func newTrackerRunner(d deps) (runner, error) {
	store := d.TrackerStore
	if store == nil {
		var err error
		if store, err = tracker.OpenStore(filepath.Join(trackerDir(d.Home), "store")); err != nil {
			return nil, err
		}
	}
	addr := d.TrackerHTTP
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("tracker API: %w", err)
	}
	return &trackerRunner{svc: tracker.New(d.Bus, store), store: store, ln: ln, urlFile: trackerURLFile(d.Home)}, nil
}

// URL is the API's base URL.
func (t *trackerRunner) URL() string {
	addr := t.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(addr.Port)))
}

func (t *trackerRunner) Run(ctx context.Context) error {
	srv := &http.Server{Handler: tracker.NewAPI(t.store), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(t.ln) }()
	_ = os.WriteFile(t.urlFile, []byte(t.URL()+"\n"), 0o644)
	err := t.svc.Run(ctx)
	_ = os.Remove(t.urlFile)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if cerr := t.store.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
