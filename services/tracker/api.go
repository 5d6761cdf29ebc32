package tracker

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/eftml/eft/events"
)

// RunDetail is GET /api/runs/{id}: the summary and the timeline.
type RunDetail struct {
	Run    Run     `json:"run"`
	Events []Event `json:"events"`
}

// SeriesResponse is GET /api/runs/{id}/metrics.
type SeriesResponse struct {
	RunID  string             `json:"run_id"`
	Series map[string][]Point `json:"series"`
}

// RunsResponse is GET /api/runs.
type RunsResponse struct {
	Runs []Run `json:"runs"`
}

// HealthResponse is GET /api/health.
type HealthResponse struct {
	Position uint64 `json:"position"`
}

// NewAPI serves the store as JSON:
//
//	GET /api/health                       {"position": N}
//	GET /api/runs                         {"runs": [Run, ...]}, newest first
//	GET /api/runs/{id}                    {"run": Run, "events": [Event, ...]}
//	GET /api/runs/{id}/events?after=SEQ   {"run": Run, "events": [events after SEQ]}
//	GET /api/runs/{id}/metrics?name=loss  {"run_id": id, "series": {"loss": [Point, ...]}}
//
// Errors are {"error": "..."} with 400 or 404.
func NewAPI(store *Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, HealthResponse{Position: store.Position()})
	})
	mux.HandleFunc("GET /api/runs", func(w http.ResponseWriter, r *http.Request) {
		runs, err := store.Runs()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if runs == nil {
			runs = []Run{}
		}
		writeJSON(w, http.StatusOK, RunsResponse{Runs: runs})
	})
	detail := func(w http.ResponseWriter, r *http.Request) {
		run, ok := lookupRun(w, r, store)
		if !ok {
			return
		}
		var after uint64
		if s := r.URL.Query().Get("after"); s != "" {
			var err error
			if after, err = strconv.ParseUint(s, 10, 64); err != nil {
				writeError(w, http.StatusBadRequest, "after="+s+" is not a stream sequence")
				return
			}
		}
		evs, err := store.Timeline(run.ID, after)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if evs == nil {
			evs = []Event{}
		}
		writeJSON(w, http.StatusOK, RunDetail{Run: *run, Events: evs})
	}
	mux.HandleFunc("GET /api/runs/{id}", detail)
	mux.HandleFunc("GET /api/runs/{id}/events", detail)
	mux.HandleFunc("GET /api/runs/{id}/metrics", func(w http.ResponseWriter, r *http.Request) {
		run, ok := lookupRun(w, r, store)
		if !ok {
			return
		}
		series, err := store.Series(run.ID, r.URL.Query().Get("name"))
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, SeriesResponse{RunID: run.ID, Series: series})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func lookupRun(w http.ResponseWriter, r *http.Request, store *Store) (*Run, bool) {
	id := r.PathValue("id")
	if !events.ValidRunID(id) {
		writeError(w, http.StatusBadRequest, "run id "+strconv.Quote(id)+" is not valid")
		return nil, false
	}
	run, ok, err := store.Run(id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return nil, false
	}
	if !ok {
		writeError(w, http.StatusNotFound, "no run "+id)
		return nil, false
	}
	return run, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
