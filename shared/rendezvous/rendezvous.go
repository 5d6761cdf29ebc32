// Package rendezvous brings the trainers of one data-parallel run
// (world_size > 1) together over NATS: each claims a rank in a JetStream
// key-value bucket (an atomic create, held by a lease it refreshes, so a
// dead trainer's rank is free again once its lease runs out), they wait
// until every rank is claimed, and they see each other's worker name and
// the bytes a collective library needs from its peers (NCCL's unique id,
// published by rank 0). For CPU runs and tests it also sums gradients
// across ranks over core NATS (AllReduceSum); GPU ranks use NCCL instead.
//
// It owns the meeting, not the training: which micro-batches a rank reads
// is shared/batches' Plan{Rank, World}, and when to all-reduce is the
// trainer's.
package rendezvous

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket of rank claims; a key is "<run>.<rank>".
const Bucket = "EFT_RANKS"

// Options for Join. The zero value is a 15-second lease and no info.
type Options struct {
	// Worker names this member to its peers (host:pid).
	Worker string
	// Info is what this member's peers need from it (rank 0: NCCL's unique id).
	Info []byte
	// Lease: a claim not refreshed for this long is free again (0: 15s).
	// Members refresh every Lease/3.
	Lease time.Duration
}

// Peer is one member of the world as the others see it.
type Peer struct {
	Rank   int    `json:"rank"`
	Worker string `json:"worker"`
	Info   []byte `json:"info,omitempty"`
}

// Member is this process's place in a run's world.
type Member struct {
	Rank, World int
	runID       string
	nc          *nats.Conn
	kv          jetstream.KeyValue
	peers       []Peer

	stopBeat func()
	beatDone chan struct{}
	mu       sync.Mutex
	lost     error

	sub     *nats.Subscription
	inbox   chan *nats.Msg
	pending map[string][]byte // all-reduce pieces that came before their step
}

func key(runID string, rank int) string { return runID + "." + strconv.Itoa(rank) }

// Join claims the lowest free rank of runID's world of world members, then
// waits until every rank is claimed (or ctx ends) and returns this member.
// A world whose ranks are all taken makes Join wait for one to be freed.
func Join(ctx context.Context, nc *nats.Conn, runID string, world int, opts Options) (*Member, error) {
	if world < 1 {
		return nil, fmt.Errorf("rendezvous: world of %d", world)
	}
	if opts.Lease == 0 {
		opts.Lease = 15 * time.Second
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "eft data-parallel rank claims (<run>.<rank>)",
		TTL: opts.Lease, History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("rendezvous: bucket %s: %w", Bucket, err)
	}
	m := &Member{World: world, runID: runID, nc: nc, kv: kv, inbox: make(chan *nats.Msg, 4096), pending: map[string][]byte{}}
	// Subscribe before claiming: a peer publishes only after every rank is
	// claimed, so no piece meant for this member is sent before it listens.
	if m.sub, err = nc.ChanSubscribe(subjectRoot(runID)+".>", m.inbox); err != nil {
		return nil, fmt.Errorf("rendezvous: %w", err)
	}
	_ = m.sub.SetPendingLimits(-1, -1)
	rev, err := m.claim(ctx, opts)
	if err != nil {
		_ = m.sub.Unsubscribe()
		return nil, err
	}
	beatCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopBeat, m.beatDone = cancel, make(chan struct{})
	go m.heartbeat(beatCtx, opts, rev)
	if err := m.meet(ctx); err != nil {
		_ = m.Leave(context.WithoutCancel(ctx))
		return nil, err
	}
	return m, nil
}

func (m *Member) claim(ctx context.Context, opts Options) (uint64, error) {
	for {
		for rank := range m.World {
			p, _ := json.Marshal(Peer{Rank: rank, Worker: opts.Worker, Info: opts.Info})
			rev, err := m.kv.Create(ctx, key(m.runID, rank), p)
			if err == nil {
				m.Rank = rank
				return rev, nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return 0, fmt.Errorf("rendezvous: claiming rank %d of run %s: %w", rank, m.runID, err)
			}
		}
		// Every rank is held: wait for a lease to run out.
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("rendezvous: all %d ranks of run %s are taken: %w", m.World, m.runID, ctx.Err())
		case <-time.After(opts.Lease / 10):
		}
	}
}

// heartbeat refreshes the claim; losing it (the lease ran out and another
// member took the rank) is recorded for Lost.
func (m *Member) heartbeat(ctx context.Context, opts Options, rev uint64) {
	defer close(m.beatDone)
	p, _ := json.Marshal(Peer{Rank: m.Rank, Worker: opts.Worker, Info: opts.Info})
	tick := time.NewTicker(opts.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			next, err := m.kv.Update(ctx, key(m.runID, m.Rank), p, rev)
			if err != nil {
				if ctx.Err() == nil {
					m.mu.Lock()
					m.lost = fmt.Errorf("rendezvous: rank %d of run %s: lease not renewed: %w", m.Rank, m.runID, err)
					m.mu.Unlock()
				}
				return
			}
			rev = next
		}
	}
}

// meet waits until every rank is claimed and records the peers.
func (m *Member) meet(ctx context.Context) error {
	w, err := m.kv.Watch(ctx, m.runID+".*")
	if err != nil {
		return fmt.Errorf("rendezvous: %w", err)
	}
	defer w.Stop()
	byRank := map[int]Peer{}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("rendezvous: %d of %d ranks of run %s arrived: %w", len(byRank), m.World, m.runID, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("rendezvous: watch of run %s ended", m.runID)
			}
			if e == nil {
				continue // the initial values are in
			}
			if e.Operation() != jetstream.KeyValuePut {
				delete(byRank, rankOf(e.Key()))
				continue
			}
			var p Peer
			if err := json.Unmarshal(e.Value(), &p); err != nil || p.Rank < 0 || p.Rank >= m.World {
				continue
			}
			byRank[p.Rank] = p
			if len(byRank) == m.World {
				m.peers = make([]Peer, m.World)
				for r, p := range byRank {
					m.peers[r] = p
				}
				return nil
			}
		}
	}
}

func rankOf(k string) int {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '.' {
			r, err := strconv.Atoi(k[i+1:])
			if err == nil {
				return r
			}
			break
		}
	}
	return -1
}

// Peers are the world's members by rank, as they were when all had arrived.
func (m *Member) Peers() []Peer { return append([]Peer(nil), m.peers...) }

// Lost is non-nil once this member's claim could not be renewed: its rank
// may belong to another member now, and the world must meet again.
func (m *Member) Lost() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lost
}

// Leave gives the rank back at once and stops listening.
func (m *Member) Leave(ctx context.Context) error {
	m.stopBeat()
	<-m.beatDone
	_ = m.sub.Unsubscribe()
	if err := m.kv.Delete(ctx, key(m.runID, m.Rank)); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("rendezvous: leaving rank %d of run %s: %w", m.Rank, m.runID, err)
	}
	return nil
}

func subjectRoot(runID string) string { return "eft.dp." + runID }

// chunkFloats bounds one all-reduce message (NATS's payload limit is 8 MiB
// on eft's servers, 1 MiB by default elsewhere).
const chunkFloats = 128 << 10

// AllReduceSum replaces data, on every rank, by the sum over ranks of each
// rank's data for this step, added in rank order so that every rank holds
// the same bits. Every rank calls it with the same step and length. It is
// the CPU path (tests, small models): core NATS, no retransmission, so a
// lost piece ends in ctx's deadline; GPU ranks all-reduce with NCCL.
func (m *Member) AllReduceSum(ctx context.Context, step uint64, data []float32) error {
	chunks := max(1, (len(data)+chunkFloats-1)/chunkFloats)
	pieceSubject := func(rank, chunk int) string {
		return fmt.Sprintf("%s.%d.%d.%d", subjectRoot(m.runID), step, rank, chunk)
	}
	for c := range chunks {
		lo, hi := c*chunkFloats, min(len(data), (c+1)*chunkFloats)
		buf := make([]byte, 4*(hi-lo))
		for i, v := range data[lo:hi] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if err := m.nc.Publish(pieceSubject(m.Rank, c), buf); err != nil {
			return fmt.Errorf("rendezvous: all-reduce step %d: %w", step, err)
		}
	}
	pieces := map[string][]byte{}
	want := func() bool {
		for r := range m.World {
			if r == m.Rank {
				continue
			}
			for c := range chunks {
				s := pieceSubject(r, c)
				if _, ok := pieces[s]; ok {
					continue
				}
				if b, ok := m.pending[s]; ok {
					pieces[s] = b
					delete(m.pending, s)
					continue
				}
				return true
			}
		}
		return false
	}
	for want() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("rendezvous: all-reduce step %d of run %s: %d of %d pieces: %w", step, m.runID, len(pieces), (m.World-1)*chunks, ctx.Err())
		case msg := <-m.inbox:
			m.pending[msg.Subject] = msg.Data
		}
	}
	sum := make([]float32, len(data))
	for r := range m.World {
		for c := range chunks {
			lo, hi := c*chunkFloats, min(len(data), (c+1)*chunkFloats)
			if r == m.Rank {
				for i := lo; i < hi; i++ {
					sum[i] += data[i]
				}
				continue
			}
			b := pieces[pieceSubject(r, c)]
			if len(b) != 4*(hi-lo) {
				return fmt.Errorf("rendezvous: all-reduce step %d: rank %d sent %d bytes for chunk %d, want %d", step, r, len(b), c, 4*(hi-lo))
			}
			for i := lo; i < hi; i++ {
				sum[i] += math.Float32frombits(binary.LittleEndian.Uint32(b[4*(i-lo):]))
			}
		}
	}
	copy(data, sum)
	return nil
}
