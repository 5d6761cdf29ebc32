// Package rendezvous brings the trainers of one data-parallel run
// (world_size > 1) together over NATS: each claims a rank in a JetStream
// key-value bucket (an atomic create, held by a lease it refreshes, so a
// dead trainer's rank is free again once its lease runs out), they wait
// until every rank is claimed, and they see each other's worker name and
// the bytes a collective library needs from its peers (NCCL's unique id,
// published by rank 0). For CPU runs and tests it also sums gradients
// across ranks over core NATS (AllReduceSum); GPU ranks use NCCL instead.
//
// A world, once met, has a generation (a hash of its members' claims): its
// messages carry it, so nothing a member of an earlier meeting of the same
// run still sends is mixed into this one's sums. While a collective waits,
// it watches its peers: a peer that leaves (Leave) or whose claim is gone
// (its lease ran out: a dead process) ends the wait with ErrPeerLost at
// once or within a third of the lease, instead of waiting forever.
//
// It owns the meeting, not the training: which micro-batches a rank reads
// is shared/batches' Plan{Rank, World}, and when to all-reduce is the
// trainer's.
package rendezvous

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
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
	// Info is what this member's peers need to know from it before they
	// start (the checkpoint it resumes from, say).
	Info []byte
	// Lease: a claim not refreshed for this long is free again (0: 15s).
	// Members refresh every Lease/3.
	Lease time.Duration
	// FailIfFull makes Join return ErrWorldFull when every rank is claimed,
	// instead of waiting for one to be freed.
	FailIfFull bool
}

// ErrWorldFull is Join's error, with Options.FailIfFull, when every rank of
// the world is claimed.
var ErrWorldFull = errors.New("rendezvous: every rank is claimed")

// ErrPeerLost is wrapped by a collective's error when a peer left or its
// claim ran out while the others waited for it: the world must meet again.
var ErrPeerLost = errors.New("rendezvous: a peer was lost")

// Peer is one member of the world as the others see it.
type Peer struct {
	Rank   int    `json:"rank"`
	Worker string `json:"worker"`
	Info   []byte `json:"info,omitempty"`
	// Claim is a random id of this member's claim, unique per Join.
	Claim string `json:"claim"`
}

// Member is this process's place in a run's world.
type Member struct {
	Rank, World int
	runID       string
	nc          *nats.Conn
	kv          jetstream.KeyValue
	peers       []Peer
	lease       time.Duration
	// gen is the world's generation: every member's claim, hashed.
	gen string

	stopBeat func()
	beatDone chan struct{}
	mu       sync.Mutex
	lost     error

	sub     *nats.Subscription
	inbox   chan *nats.Msg
	pending map[string][]byte // pieces that came before their exchange
	left    map[int]bool      // peers that said they left
}

func key(runID string, rank int) string { return runID + "." + strconv.Itoa(rank) }

// Join claims the lowest free rank of runID's world of world members, then
// waits until every rank is claimed (or ctx ends) and returns this member.
// A world whose ranks are all taken makes Join wait for one to be freed
// (or, with FailIfFull, return ErrWorldFull).
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
	m := &Member{World: world, runID: runID, nc: nc, kv: kv, lease: opts.Lease,
		inbox: make(chan *nats.Msg, inboxSize), pending: map[string][]byte{}, left: map[int]bool{}}
	// Subscribe before claiming: a peer publishes only after every rank is
	// claimed, so no piece meant for this member is sent before it listens.
	if m.sub, err = nc.ChanSubscribe(subjectRoot(runID)+".>", m.inbox); err != nil {
		return nil, fmt.Errorf("rendezvous: %w", err)
	}
	_ = m.sub.SetPendingLimits(-1, -1)
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	claim := Peer{Worker: opts.Worker, Info: opts.Info, Claim: hex.EncodeToString(nonce[:])}
	rev, err := m.claim(ctx, opts, &claim)
	if err != nil {
		_ = m.sub.Unsubscribe()
		return nil, err
	}
	beatCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopBeat, m.beatDone = cancel, make(chan struct{})
	go m.heartbeat(beatCtx, claim, rev)
	if err := m.meet(ctx); err != nil {
		_ = m.Leave(context.WithoutCancel(ctx))
		return nil, err
	}
	return m, nil
}

func (m *Member) claim(ctx context.Context, opts Options, p *Peer) (uint64, error) {
	for {
		for rank := range m.World {
			p.Rank = rank
			data, _ := json.Marshal(p)
			rev, err := m.kv.Create(ctx, key(m.runID, rank), data)
			if err == nil {
				m.Rank = rank
				return rev, nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return 0, fmt.Errorf("rendezvous: claiming rank %d of run %s: %w", rank, m.runID, err)
			}
		}
		if opts.FailIfFull {
			return 0, fmt.Errorf("rendezvous: run %s: all %d ranks are claimed: %w", m.runID, m.World, ErrWorldFull)
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
func (m *Member) heartbeat(ctx context.Context, claim Peer, rev uint64) {
	defer close(m.beatDone)
	p, _ := json.Marshal(claim)
	tick := time.NewTicker(m.lease / 3)
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

// meet waits until every rank is claimed and records the peers and the
// world's generation.
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
				h := fnv.New64a()
				for r := range m.World {
					m.peers[r] = byRank[r]
					h.Write([]byte(byRank[r].Claim + "/"))
				}
				m.gen = strconv.FormatUint(h.Sum64(), 36)
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

// Leave gives the rank back at once, tells the peers (a collective they
// wait in ends with ErrPeerLost) and stops listening.
func (m *Member) Leave(ctx context.Context) error {
	m.stopBeat()
	<-m.beatDone
	if m.gen != "" {
		_ = m.nc.Publish(m.subject("leave", 0, m.Rank, 0), nil)
		_ = m.nc.Flush()
	}
	_ = m.sub.Unsubscribe()
	if err := m.kv.Delete(ctx, key(m.runID, m.Rank)); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("rendezvous: leaving rank %d of run %s: %w", m.Rank, m.runID, err)
	}
	return nil
}

func subjectRoot(runID string) string { return "eft.dp." + runID }

// subject names one piece of an exchange of this world:
// eft.dp.<run>.<generation>.<kind>.<step>.<rank>.<chunk>.
func (m *Member) subject(kind string, step uint64, rank, chunk int) string {
	return fmt.Sprintf("%s.%s.%s.%d.%d.%d", subjectRoot(m.runID), m.gen, kind, step, rank, chunk)
}

// inboxSize is how many messages a member buffers between its collectives
// (2 GiB of gradient pieces at most).
var inboxSize = 4096

// chunkBytes bounds one message (NATS's payload limit is 8 MiB on eft's
// servers, 1 MiB by default elsewhere).
const chunkBytes = 512 << 10

// chunkFloats is how many float32 one message carries.
const chunkFloats = chunkBytes / 4

// exchange publishes this member's pieces of an exchange (kind, step) and
// returns every rank's pieces, this member's included: from[rank][chunk].
// senders are the ranks whose pieces are awaited (nil: all).
func (m *Member) exchange(ctx context.Context, kind string, step uint64, mine [][]byte, senders []int, chunks int) ([][][]byte, error) {
	if m.gen == "" {
		return nil, errors.New("rendezvous: the world has not met")
	}
	for c, piece := range mine {
		if err := m.nc.Publish(m.subject(kind, step, m.Rank, c), piece); err != nil {
			return nil, fmt.Errorf("rendezvous: %s step %d: %w", kind, step, err)
		}
	}
	if senders == nil {
		senders = make([]int, m.World)
		for r := range senders {
			senders[r] = r
		}
	}
	from := make([][][]byte, m.World)
	from[m.Rank] = mine
	missing := 0
	for _, r := range senders {
		if r != m.Rank {
			from[r] = make([][]byte, chunks)
			missing += chunks
		}
	}
	prefix := fmt.Sprintf("%s.%d.", kind, step)
	take := func(p piece) {
		if p.head != prefix || p.rank < 0 || p.rank >= m.World || from[p.rank] == nil || p.chunk >= len(from[p.rank]) || from[p.rank][p.chunk] != nil || p.rank == m.Rank {
			m.pending[p.head+strconv.Itoa(p.rank)+"."+strconv.Itoa(p.chunk)] = p.data
			return
		}
		from[p.rank][p.chunk] = p.data
		if p.data == nil {
			from[p.rank][p.chunk] = []byte{}
		}
		missing--
	}
	for rest, data := range m.pending {
		if strings.HasPrefix(rest, prefix) {
			delete(m.pending, rest)
			if p, ok := parsePiece(rest); ok {
				p.data = data
				take(p)
			}
		}
	}
	check := time.NewTicker(max(m.lease/3, 10*time.Millisecond))
	defer check.Stop()
	for missing > 0 {
		if err := m.peerLost(); err != nil {
			return nil, fmt.Errorf("rendezvous: %s step %d of run %s: %w", kind, step, m.runID, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("rendezvous: %s step %d of run %s: %d pieces missing: %w", kind, step, m.runID, missing, ctx.Err())
		case msg := <-m.inbox:
			if p, ok := m.receive(msg); ok {
				take(p)
			}
		case <-check.C:
			if err := m.checkPeers(ctx); err != nil {
				return nil, fmt.Errorf("rendezvous: %s step %d of run %s: %w", kind, step, m.runID, err)
			}
			if n, err := m.sub.Dropped(); err == nil && n > 0 {
				// A piece that was dropped will never come: say so rather than wait.
				return nil, fmt.Errorf("rendezvous: %s step %d of run %s: %d messages were dropped (more pieces in flight than the %d this member buffers)",
					kind, step, m.runID, n, cap(m.inbox))
			}
		}
	}
	return from, nil
}

// piece is one message of an exchange: <kind>.<step>. (head), rank, chunk.
type piece struct {
	head        string
	rank, chunk int
	data        []byte
}

// parsePiece splits "<kind>.<step>.<rank>.<chunk>".
func parsePiece(rest string) (piece, bool) {
	f := strings.Split(rest, ".")
	if len(f) != 4 {
		return piece{}, false
	}
	rank, err1 := strconv.Atoi(f[2])
	chunk, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || chunk < 0 {
		return piece{}, false
	}
	return piece{head: f[0] + "." + f[1] + ".", rank: rank, chunk: chunk}, true
}

// receive sorts one message: a peer's piece of this world's exchanges
// (returned), a peer's leave notice (recorded), or nothing to keep (this
// member's own echo, an earlier meeting's message).
func (m *Member) receive(msg *nats.Msg) (piece, bool) {
	rest, ok := strings.CutPrefix(msg.Subject, subjectRoot(m.runID)+"."+m.gen+".")
	if !ok {
		return piece{}, false
	}
	p, ok := parsePiece(rest)
	if !ok || p.rank == m.Rank {
		return piece{}, false
	}
	if p.head == "leave.0." {
		if p.rank >= 0 && p.rank < m.World {
			m.left[p.rank] = true
		}
		return piece{}, false
	}
	p.data = msg.Data
	return p, true
}

// peerLost reports a peer that said it left.
func (m *Member) peerLost() error {
	for r := range m.World {
		if m.left[r] {
			return fmt.Errorf("rank %d (%s) left: %w", r, m.peers[r].Worker, ErrPeerLost)
		}
	}
	if err := m.Lost(); err != nil {
		return fmt.Errorf("%w: %w", err, ErrPeerLost)
	}
	return nil
}

// checkPeers finds a peer whose claim is gone or belongs to another member
// now: its process died (its lease ran out) or gave the rank up.
func (m *Member) checkPeers(ctx context.Context) error {
	for r, p := range m.peers {
		if r == m.Rank {
			continue
		}
		e, err := m.kv.Get(ctx, key(m.runID, r))
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return fmt.Errorf("rank %d (%s) is gone (its claim ran out: the process stopped or lost the server): %w", r, p.Worker, ErrPeerLost)
		}
		if err != nil {
			continue // the server is unwell: look again next time
		}
		var now Peer
		if json.Unmarshal(e.Value(), &now) == nil && now.Claim != p.Claim {
			return fmt.Errorf("rank %d (%s) was claimed by %s: %w", r, p.Worker, now.Worker, ErrPeerLost)
		}
	}
	return nil
}

// AllReduceSum replaces data, on every rank, by the sum over ranks of each
// rank's data for this step, added in rank order so that every rank holds
// the same bits. Every rank calls it with the same step and length. It is
// the CPU path (tests, small models): core NATS, no retransmission, so a
// lost piece ends in ctx's deadline; GPU ranks all-reduce with NCCL.
func (m *Member) AllReduceSum(ctx context.Context, step uint64, data []float32) error {
	chunks := max(1, (len(data)+chunkFloats-1)/chunkFloats)
	mine := make([][]byte, chunks)
	for c := range chunks {
		lo, hi := c*chunkFloats, min(len(data), (c+1)*chunkFloats)
		buf := make([]byte, 4*(hi-lo))
		for i, v := range data[lo:hi] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		mine[c] = buf
	}
	from, err := m.exchange(ctx, "f32", step, mine, nil, chunks)
	if err != nil {
		return err
	}
	sum := make([]float32, len(data))
	for r := range m.World {
		for c := range chunks {
			lo, hi := c*chunkFloats, min(len(data), (c+1)*chunkFloats)
			b := from[r][c]
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

// AllReduceSum64 is AllReduceSum for a few float64 values (token counts,
// loss sums: exact for integers below 2^53). One message per rank.
func (m *Member) AllReduceSum64(ctx context.Context, step uint64, data []float64) error {
	if len(data) > chunkBytes/8 {
		return fmt.Errorf("rendezvous: AllReduceSum64 of %d values; at most %d", len(data), chunkBytes/8)
	}
	buf := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
	}
	from, err := m.exchange(ctx, "f64", step, [][]byte{buf}, nil, 1)
	if err != nil {
		return err
	}
	sum := make([]float64, len(data))
	for r := range m.World {
		b := from[r][0]
		if len(b) != len(buf) {
			return fmt.Errorf("rendezvous: all-reduce step %d: rank %d sent %d float64s, want %d", step, r, len(b)/8, len(data))
		}
		for i := range sum {
			sum[i] += math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
	}
	copy(data, sum)
	return nil
}

// Broadcast returns rank 0's data (at most 512 KiB) on every rank: rank 0
// passes it, the others pass nil. tag tells broadcasts apart (NCCL's
// unique id is tag 1).
func (m *Member) Broadcast(ctx context.Context, tag uint64, data []byte) ([]byte, error) {
	var mine [][]byte
	if m.Rank == 0 {
		if len(data) > chunkBytes {
			return nil, fmt.Errorf("rendezvous: broadcast of %d bytes; at most %d", len(data), chunkBytes)
		}
		mine = [][]byte{data}
	}
	from, err := m.exchange(ctx, "bcast", tag, mine, []int{0}, 1)
	if err != nil {
		return nil, err
	}
	return from[0][0], nil
}
