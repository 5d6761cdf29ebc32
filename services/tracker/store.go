package tracker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/eftml/eft/events"
)

// Keys of the pebble store:
//
//	p                          stream position (uint64, big endian)
//	i/<event id>               stream position of an applied event: de-duplication
//	r/<run id>                 Run (JSON)
//	e/<run id>/<seq>           Event (JSON), seq big endian: the timeline in order
//	m/<run id>/<name>\x00<step> Point (encodePoint), step big endian: series in step order
var (
	keyPosition = []byte("p")
	prefixID    = "i/"
	prefixRun   = "r/"
	prefixEvent = "e/"
	prefixPoint = "m/"
)

// Store is the tracker's projection in a pebble database. One goroutine
// applies events; any number may read.
type Store struct {
	db  *pebble.DB
	dir string

	mu   sync.Mutex      // guards the writer's state below
	pos  uint64          // last applied stream sequence
	runs map[string]*Run // the writer's cache of run summaries
}

// OpenStore opens (creating if needed) the store in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tracker: store %s: %w", dir, err)
	}
	opts := &pebble.Options{Logger: quietLogger{}}
	// Every applied event looks its id up (de-duplication), and nearly all of
	// those lookups miss: bloom filters answer a miss without reading blocks.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("tracker: opening store %s: %w (is another tracker using it?)", dir, err)
	}
	s := &Store{db: db, dir: dir, runs: map[string]*Run{}}
	v, closer, err := db.Get(keyPosition)
	switch {
	case err == nil:
		s.pos = binary.BigEndian.Uint64(v)
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		db.Close()
		return nil, fmt.Errorf("tracker: store %s position: %w", dir, err)
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close syncs and closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		s.db.Close()
		return fmt.Errorf("tracker: syncing store: %w", err)
	}
	return s.db.Close()
}

// Position is the stream sequence of the last applied event (0: none).
func (s *Store) Position() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

func seqBytes(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Apply projects the event stored at stream sequence seq. Events at or
// before the stored position, and events whose id was applied before, change
// nothing but the position; it reports whether the event was new.
func (s *Store) Apply(env events.Envelope, seq uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq != 0 && seq <= s.pos {
		return false, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	idKey := []byte(prefixID + env.ID)
	_, closer, err := s.db.Get(idKey)
	dup := err == nil
	if dup {
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return false, fmt.Errorf("tracker: reading %s: %w", idKey, err)
	}
	var run *Run
	if !dup {
		run, err = s.project(b, env, seq)
		if err != nil {
			return false, err
		}
		_ = b.Set(idKey, seqBytes(seq), nil)
	}
	if seq != 0 {
		_ = b.Set(keyPosition, seqBytes(seq), nil)
	}
	opts := pebble.Sync
	if env.Type == events.TypeMetricsLogged {
		opts = pebble.NoSync
	}
	if err := b.Commit(opts); err != nil {
		return false, fmt.Errorf("tracker: writing event %s (seq %d): %w", env.ID, seq, err)
	}
	if run != nil {
		s.runs[run.ID] = run
	}
	if seq != 0 {
		s.pos = seq
	}
	return !dup, nil
}

// project writes env's effects into b and returns the run's new summary.
func (s *Store) project(b *pebble.Batch, env events.Envelope, seq uint64) (*Run, error) {
	prev, err := s.cachedRun(env.RunID)
	if err != nil {
		return nil, err
	}
	run := &Run{ID: env.RunID}
	if prev != nil {
		*run = *prev
		run.LastMetrics = maps.Clone(prev.LastMetrics)
	}
	if run.TraceID == "" {
		run.TraceID = traceID(env.TraceParent)
	}
	if env.Time.After(run.UpdatedAt) {
		run.UpdatedAt = env.Time
	}
	if next := statusOf(env.Type); next != "" && !run.Terminal() && run.Status != StatusFailed && run.Status != StatusCancelled {
		if statusRank[next] >= statusRank[run.Status] || next == StatusFailed || next == StatusCancelled {
			run.Status = next
		}
	}
	if run.Status == "" {
		run.Status = StatusRequested
	}

	if env.Type == events.TypeMetricsLogged {
		m, err := events.PayloadAs[events.MetricsLogged](env)
		if err != nil {
			return nil, s.badPayload(b, env, seq, run, err)
		}
		run.MetricEvents++
		if m.Step > run.Step {
			run.Step = m.Step
		}
		if run.LastMetrics == nil {
			run.LastMetrics = map[string]events.Metric{}
		}
		for name, v := range m.Values {
			if strings.IndexByte(name, 0) >= 0 {
				continue
			}
			run.LastMetrics[name] = v
			run.MetricPoints++
			_ = b.Set(pointKey(env.RunID, name, m.Step), encodePoint(v, m.Epoch, env.Time), nil)
		}
		return run, s.putRun(b, run)
	}

	run.Events++
	if err := s.summarize(run, env); err != nil {
		return nil, s.badPayload(b, env, seq, run, err)
	}
	if err := s.putEvent(b, env, seq); err != nil {
		return nil, err
	}
	return run, s.putRun(b, run)
}

// badPayload records an event whose payload does not decode: it stays in the
// timeline (the log of record has it), and the summary is not touched beyond
// the count. It returns nil so that the event is applied, not retried.
func (s *Store) badPayload(b *pebble.Batch, env events.Envelope, seq uint64, run *Run, _ error) error {
	if env.Type == events.TypeMetricsLogged {
		run.Events++
	}
	if err := s.putEvent(b, env, seq); err != nil {
		return err
	}
	return s.putRun(b, run)
}

// summarize folds a known event's payload into the run summary. Unknown
// types (a newer producer's) only count.
func (s *Store) summarize(run *Run, env events.Envelope) error {
	p, err := events.DecodePayload(env)
	if errors.Is(err, events.ErrUnknownType) {
		return nil
	}
	if err != nil {
		return err
	}
	switch p := p.(type) {
	case events.RunRequested:
		run.ConfigFile = p.Config.FileName
		run.RequestedAt = env.Time
	case events.TrainingStarted:
		run.TotalSteps = p.TotalSteps
	case events.CheckpointSaved:
		run.Checkpoints++
	case events.EvalCompleted:
		loss := p.Loss
		run.EvalLoss = &loss
	case events.TrainingCompleted:
		if p.Steps > run.Step {
			run.Step = p.Steps
		}
	case events.RunFailed:
		if run.Failure == nil {
			run.Failure = &p
		}
	case events.RunCancelled:
		run.CancelReason = p.Reason
	}
	return nil
}

func (s *Store) putEvent(b *pebble.Batch, env events.Envelope, seq uint64) error {
	data, err := json.Marshal(Event{Seq: seq, ID: env.ID, Type: env.Type, Time: env.Time, Producer: env.Producer,
		CausationID: env.CausationID, TraceParent: env.TraceParent, Payload: env.Payload})
	if err != nil {
		return fmt.Errorf("tracker: encoding event %s: %w", env.ID, err)
	}
	return b.Set(eventKey(env.RunID, seq), data, nil)
}

func (s *Store) putRun(b *pebble.Batch, run *Run) error {
	data, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("tracker: encoding run %s: %w", run.ID, err)
	}
	return b.Set([]byte(prefixRun+run.ID), data, nil)
}

func (s *Store) cachedRun(id string) (*Run, error) {
	if r, ok := s.runs[id]; ok {
		return r, nil
	}
	r, ok, err := s.Run(id)
	if err != nil || !ok {
		return nil, err
	}
	s.runs[id] = r
	return r, nil
}

func eventKey(runID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixEvent+runID+"/"), seq)
}

func pointKey(runID, name string, step int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixPoint+runID+"/"+name+"\x00"), uint64(step))
}

// encodePoint is a metric value as stored: value and epoch (float64 bits)
// and the event's time (Unix nanoseconds), 24 bytes; the step is in the key.
// A JSON document per point cost more than the rest of an event's projection.
func encodePoint(v events.Metric, epoch float64, t time.Time) []byte {
	out := make([]byte, 0, 24)
	out = binary.BigEndian.AppendUint64(out, math.Float64bits(float64(v)))
	out = binary.BigEndian.AppendUint64(out, math.Float64bits(epoch))
	return binary.BigEndian.AppendUint64(out, uint64(t.UnixNano()))
}

func decodePoint(data []byte) (Point, error) {
	if len(data) != 24 {
		return Point{}, fmt.Errorf("metric point of %d bytes, want 24", len(data))
	}
	return Point{
		Value: events.Metric(math.Float64frombits(binary.BigEndian.Uint64(data))),
		Epoch: math.Float64frombits(binary.BigEndian.Uint64(data[8:])),
		Time:  time.Unix(0, int64(binary.BigEndian.Uint64(data[16:]))).UTC(),
	}, nil
}

// Run returns one run's summary.
func (s *Store) Run(id string) (*Run, bool, error) {
	v, closer, err := s.db.Get([]byte(prefixRun + id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("tracker: run %s: %w", id, err)
	}
	defer closer.Close()
	var r Run
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, false, fmt.Errorf("tracker: run %s: %w", id, err)
	}
	return &r, true, nil
}

// Runs returns every run, newest first (run ids are ULIDs).
func (s *Store) Runs() ([]Run, error) {
	var out []Run
	err := s.scan(prefixRun, func(k, v []byte) error {
		var r Run
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("tracker: stored run %s: %w", strings.TrimPrefix(string(k), prefixRun), err)
		}
		out = append(out, r)
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// Timeline returns the run's events after stream sequence after, in order.
func (s *Store) Timeline(runID string, after uint64) ([]Event, error) {
	var out []Event
	err := s.scanFrom(prefixEvent+runID+"/", eventKey(runID, after+1), func(k, v []byte) error {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("tracker: run %s: stored event at sequence %d: %w", runID, binary.BigEndian.Uint64(k[len(k)-8:]), err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// Series returns the run's metric series by name, each in step order; name
// "" means every metric.
func (s *Store) Series(runID, name string) (map[string][]Point, error) {
	prefix := prefixPoint + runID + "/"
	if name != "" {
		prefix += name + "\x00"
	}
	out := map[string][]Point{}
	err := s.scan(prefix, func(k, v []byte) error {
		rest := k[len(prefixPoint+runID+"/"):]
		metric := string(rest[:bytes.IndexByte(rest, 0)])
		p, err := decodePoint(v)
		if err != nil {
			return err
		}
		p.Step = int64(binary.BigEndian.Uint64(rest[len(metric)+1:]))
		out[metric] = append(out[metric], p)
		return nil
	})
	return out, err
}

func (s *Store) scan(prefix string, fn func(k, v []byte) error) error {
	return s.scanFrom(prefix, []byte(prefix), fn)
}

func (s *Store) scanFrom(prefix string, from []byte, fn func(k, v []byte) error) error {
	upper := []byte(prefix)
	upper[len(upper)-1]++
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("tracker: scanning %q: %w", prefix, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return fmt.Errorf("tracker: reading %q: %w", it.Key(), err)
		}
	}
	return it.Error()
}

// quietLogger keeps pebble's informational logs out of the CLI's output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}
