package rendezvous

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
)

// conn is one trainer's own connection to the server.
func conn(t *testing.T, srv *bus.Embedded) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// joinAll joins world members concurrently, each on its own connection.
func joinAll(t *testing.T, srv *bus.Embedded, runID string, world int, opts func(i int) Options) []*Member {
	t.Helper()
	members := make([]*Member, world)
	errs := make([]error, world)
	var wg sync.WaitGroup
	for i := range world {
		nc := conn(t, srv)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			members[i], errs[i] = Join(ctx, nc, runID, world, opts(i))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return members
}

// Three trainers of one run claim three different ranks, meet, and each
// sees every peer — rank 0's info (NCCL's unique id) included. A fourth
// finds every rank taken; once one leaves, it gets that rank.
func TestTrainersClaimDistinctRanksAndMeet(t *testing.T) {
	srv := bustest.Server(t)
	runID := events.NewRunID()
	ncclID := []byte("nccl-unique-id-128-bytes")
	members := joinAll(t, srv, runID, 3, func(i int) Options {
		return Options{Worker: fmt.Sprintf("host:%d", 100+i), Info: ncclID}
	})
	var ranks []int
	for _, m := range members {
		ranks = append(ranks, m.Rank)
		peers := m.Peers()
		if len(peers) != 3 {
			t.Fatalf("rank %d sees %d peers", m.Rank, len(peers))
		}
		for r, p := range peers {
			if p.Rank != r || !strings.HasPrefix(p.Worker, "host:") || string(p.Info) != string(ncclID) {
				t.Fatalf("rank %d sees peer %d as %+v", m.Rank, r, p)
			}
		}
	}
	slices.Sort(ranks)
	if !slices.Equal(ranks, []int{0, 1, 2}) {
		t.Fatalf("ranks %v, want 0 1 2", ranks)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := Join(ctx, conn(t, srv), runID, 3, Options{Worker: "late"}); err == nil || !strings.Contains(err.Error(), "all 3 ranks") {
		t.Fatalf("a fourth member: %v", err)
	}
	leaver := members[1]
	if err := leaver.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	late, err := Join(ctx2, conn(t, srv), runID, 3, Options{Worker: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if late.Rank != leaver.Rank {
		t.Fatalf("the late member got rank %d, the freed one is %d", late.Rank, leaver.Rank)
	}
}

// A trainer that dies (its connection gone, no Leave) holds its rank only
// until its lease runs out; then a new trainer takes it, and the dead
// member's Lost reports it.
func TestADeadMembersRankIsFreedByItsLease(t *testing.T) {
	srv := bustest.Server(t)
	runID := events.NewRunID()
	lease := 900 * time.Millisecond
	members := joinAll(t, srv, runID, 2, func(int) Options { return Options{Lease: lease} })
	dead := members[0]
	dead.nc.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fresh, err := Join(ctx, conn(t, srv), runID, 2, Options{Lease: lease, Worker: "replacement"})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if fresh.Rank != dead.Rank || took < lease/2 {
		t.Fatalf("replacement got rank %d after %s; the dead member held %d with a %s lease", fresh.Rank, took, dead.Rank, lease)
	}
	for deadline := time.Now().Add(5 * time.Second); dead.Lost() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the dead member never noticed it lost its rank")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("rank %d free again %s after its holder died (lease %s)", fresh.Rank, took.Round(time.Millisecond), lease)
}

// Each rank's share of an epoch (shared/batches Plan with the rank it
// claimed) is disjoint from the others' and together they are the epoch's
// order, less the N mod world tail.
func TestRanksReadDisjointSharesOfTheBatches(t *testing.T) {
	srv := bustest.Server(t)
	members := joinAll(t, srv, events.NewRunID(), 3, func(int) Options { return Options{} })
	const n, seed = 50, 7
	order, err := batches.Plan{N: n, Seed: seed}.Epoch(1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, m := range members {
		mine, err := batches.Plan{N: n, Seed: seed, Rank: m.Rank, World: m.World}.Epoch(1)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range mine {
			seen[b]++
		}
	}
	for _, b := range order[:n-n%3] {
		if seen[b] != 1 {
			t.Fatalf("micro-batch %d is read by %d ranks", b, seen[b])
		}
	}
	if len(seen) != n-n%3 {
		t.Fatalf("%d micro-batches read, want %d", len(seen), n-n%3)
	}
}

// AllReduceSum leaves every rank with the same bits: the sum in rank order
// of each rank's vector, for vectors cut into several messages and for
// ranks that run ahead into the next step.
func TestAllReduceSumIsTheSameOnEveryRank(t *testing.T) {
	srv := bustest.Server(t)
	members := joinAll(t, srv, events.NewRunID(), 3, func(int) Options { return Options{} })
	const length = 3*chunkFloats + 17
	input := func(rank int, step uint64) []float32 {
		v := make([]float32, length)
		for i := range v {
			v[i] = float32(rank+1)*0.1 + float32(i%97)*1e-3 + float32(step)
		}
		return v
	}
	want := func(step uint64) []float32 {
		sum := make([]float32, length)
		for r := range 3 {
			for i, x := range input(r, step) {
				sum[i] += x
			}
		}
		return sum
	}
	results := make([][][]float32, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for _, m := range members {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for step := uint64(1); step <= 2; step++ {
				v := input(m.Rank, step)
				if err := m.AllReduceSum(ctx, step, v); err != nil {
					errs[m.Rank] = err
					return
				}
				results[m.Rank] = append(results[m.Rank], v)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for step := uint64(1); step <= 2; step++ {
		w := want(step)
		for r := range 3 {
			if !slices.Equal(results[r][step-1], w) {
				t.Fatalf("step %d: rank %d holds a different sum", step, r)
			}
		}
	}
}

// AllReduceSum64 sums counts exactly on every rank, and Broadcast hands
// every rank rank 0's bytes (NCCL's unique id).
func TestAllReduceSum64AndBroadcast(t *testing.T) {
	srv := bustest.Server(t)
	members := joinAll(t, srv, events.NewRunID(), 3, func(int) Options { return Options{} })
	got := make([][]float64, 3)
	ids := make([][]byte, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			v := []float64{float64(1<<40 + m.Rank), 0.1 * float64(m.Rank+1)}
			if errs[m.Rank] = m.AllReduceSum64(ctx, 1, v); errs[m.Rank] != nil {
				return
			}
			got[m.Rank] = v
			var mine []byte
			if m.Rank == 0 {
				mine = []byte("unique-id-of-rank-0")
			}
			ids[m.Rank], errs[m.Rank] = m.Broadcast(ctx, 1, mine)
		})
	}
	wg.Wait()
	want := []float64{0, 0}
	for r := range 3 { // in rank order, in float64 (not constant arithmetic)
		want[0] += float64(1<<40 + r)
		want[1] += 0.1 * float64(r+1)
	}
	for r := range 3 {
		if errs[r] != nil {
			t.Fatal(errs[r])
		}
		if !slices.Equal(got[r], want) {
			t.Fatalf("rank %d: sum %v, want %v", r, got[r], want)
		}
		if string(ids[r]) != "unique-id-of-rank-0" {
			t.Fatalf("rank %d: broadcast %q", r, ids[r])
		}
	}
}

// A collective never waits forever for a peer that is gone: one that
// leaves ends its peers' wait at once, one that dies (no Leave) within a
// third of the lease after its claim runs out; each with ErrPeerLost naming
// the rank.
func TestALostPeerEndsTheCollective(t *testing.T) {
	srv := bustest.Server(t)
	lease := 900 * time.Millisecond
	for _, how := range []string{"leaves", "dies"} {
		t.Run(how, func(t *testing.T) {
			members := joinAll(t, srv, events.NewRunID(), 3, func(int) Options { return Options{Lease: lease} })
			gone := members[2]
			start := time.Now()
			if how == "leaves" {
				if err := gone.Leave(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else {
				gone.stopBeat() // the process stops refreshing its claim...
				gone.nc.Close() // ...and its connection is gone
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, m := range members[:2] {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					errs[i] = m.AllReduceSum(ctx, 1, []float32{1, 2, 3})
				})
			}
			wg.Wait()
			took := time.Since(start)
			for _, err := range errs {
				if !errors.Is(err, ErrPeerLost) || !strings.Contains(err.Error(), fmt.Sprintf("rank %d", gone.Rank)) {
					t.Fatalf("the survivors' all-reduce: %v", err)
				}
			}
			limit := 500 * time.Millisecond
			if how == "dies" {
				limit = lease + lease/3 + time.Second
			}
			if took > limit {
				t.Fatalf("the survivors noticed after %s (limit %s)", took, limit)
			}
			t.Logf("a peer that %s: noticed after %s: %v", how, took.Round(time.Millisecond), errs[0])
		})
	}
}

// With FailIfFull a member finds a full world at once instead of waiting.
func TestFailIfFull(t *testing.T) {
	srv := bustest.Server(t)
	runID := events.NewRunID()
	joinAll(t, srv, runID, 2, func(int) Options { return Options{} })
	start := time.Now()
	_, err := Join(context.Background(), conn(t, srv), runID, 2, Options{FailIfFull: true})
	if !errors.Is(err, ErrWorldFull) || time.Since(start) > 2*time.Second {
		t.Fatalf("joining a full world: %v after %s", err, time.Since(start))
	}
}

// A piece from an earlier meeting of the same run (another generation:
// a member that has not noticed the world met again) is not summed.
func TestAnEarlierMeetingsPiecesAreIgnored(t *testing.T) {
	srv := bustest.Server(t)
	members := joinAll(t, srv, events.NewRunID(), 2, func(int) Options { return Options{} })
	a, b := members[0], members[1]
	buf := make([]byte, 4)
	binary.LittleEndian.PutUint32(buf, math.Float32bits(1000))
	if err := a.nc.Publish(fmt.Sprintf("%s.earlier.f32.1.%d.0", subjectRoot(a.runID), a.Rank), buf); err != nil {
		t.Fatal(err)
	}
	_ = a.nc.Flush()
	time.Sleep(50 * time.Millisecond) // b has it in its inbox before the real piece
	var wg sync.WaitGroup
	results := make([][]float32, 2)
	errs := make([]error, 2)
	for i, m := range []*Member{a, b} {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v := []float32{float32(i + 1)}
			errs[i] = m.AllReduceSum(ctx, 1, v)
			results[i] = v
		})
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || results[i][0] != 3 {
			t.Fatalf("member %d: %v %v, want 3", i, results[i], errs[i])
		}
	}
}

// Pieces the member could not buffer (NATS drops what a full subscription
// channel cannot take) end its collective with an error saying so, instead
// of a wait for pieces that will never come.
func TestDroppedPiecesEndTheCollective(t *testing.T) {
	defer func(n int) { inboxSize = n }(inboxSize)
	inboxSize = 4
	srv := bustest.Server(t)
	members := joinAll(t, srv, events.NewRunID(), 2, func(int) Options { return Options{Lease: 300 * time.Millisecond} })
	byRank := map[int]*Member{}
	for _, m := range members {
		byRank[m.Rank] = m
	}
	data := func() []float32 { return make([]float32, 10*chunkFloats) } // 10 pieces
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- byRank[1].AllReduceSum(ctx, 1, data()) }() // its 10 pieces fill rank 0's inbox of 4
	time.Sleep(300 * time.Millisecond)
	err := byRank[0].AllReduceSum(ctx, 1, data())
	if err == nil || !strings.Contains(err.Error(), "were dropped") {
		t.Fatalf("rank 0: %v", err)
	}
	_ = byRank[0].Leave(context.Background())
	<-done // rank 1 ends too (it may have had all of rank 0's pieces, or seen it leave)
}
