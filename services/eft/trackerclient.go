package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eftml/eft/services/tracker"
)

// runStore is how the CLI reads runs: from a tracker's HTTP API (--tracker,
// or the one an `eft train`/`eft serve` on this home is running), else from
// the home's store directly when no tracker holds it.
type runStore interface {
	Runs() ([]tracker.Run, error)
	Detail(id string, after uint64) (*tracker.RunDetail, error)
	Close() error
}

var errNoRun = errors.New("no such run")

func openRunStore(g *globals) (runStore, error) {
	if g.Tracker != "" {
		return &httpRunStore{base: strings.TrimRight(g.Tracker, "/")}, nil
	}
	if data, err := os.ReadFile(trackerURLFile(g.Home)); err == nil {
		s := &httpRunStore{base: strings.TrimSpace(string(data))}
		if s.alive() {
			return s, nil
		}
	}
	dir := filepath.Join(trackerDir(g.Home), "store")
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no runs under %s yet (and no tracker running there; --tracker URL reads a remote one)", g.Home)
	}
	store, err := tracker.OpenStore(dir)
	if err != nil {
		return nil, err
	}
	return &localRunStore{store}, nil
}

type localRunStore struct{ *tracker.Store }

func (l *localRunStore) Detail(id string, after uint64) (*tracker.RunDetail, error) {
	run, ok, err := l.Run(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w %s", errNoRun, id)
	}
	evs, err := l.Timeline(id, after)
	if err != nil {
		return nil, err
	}
	return &tracker.RunDetail{Run: *run, Events: evs}, nil
}

type httpRunStore struct{ base string }

var httpClient = &http.Client{Timeout: 10 * time.Second}

func (h *httpRunStore) alive() bool {
	var health tracker.HealthResponse
	return h.get("/api/health", &health) == nil
}

func (h *httpRunStore) get(path string, v any) error {
	resp, err := httpClient.Get(h.base + path)
	if err != nil {
		return fmt.Errorf("tracker at %s: %w", h.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("tracker at %s: %w", h.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(data, &e)
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %s", errNoRun, e.Error)
		}
		return fmt.Errorf("tracker at %s: %s: %s", h.base, resp.Status, e.Error)
	}
	return json.Unmarshal(data, v)
}

func (h *httpRunStore) Runs() ([]tracker.Run, error) {
	var r tracker.RunsResponse
	return r.Runs, h.get("/api/runs", &r)
}

func (h *httpRunStore) Detail(id string, after uint64) (*tracker.RunDetail, error) {
	var d tracker.RunDetail
	if err := h.get(fmt.Sprintf("/api/runs/%s/events?after=%d", url.PathEscape(id), after), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (h *httpRunStore) Close() error { return nil }
