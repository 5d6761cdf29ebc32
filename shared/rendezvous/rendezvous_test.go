package rendezvous

import (
	"context"
	"fmt"
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
