package trainer

// Data parallel: a run with world_size N > 1 trains on N trainers at once.
//
// The tokenizer queues one TrainJob, as for any run. The trainer that takes
// it (seat 0) queues seats 1..N-1: the same job with Seat set, ids derived
// from the job so a repeat is stored once. Each trainer holding a seat
// prepares the run as usual (batches, model, resume point), then claims a
// rank at the rendezvous (shared/rendezvous, KV bucket EFT_RANKS) and waits
// for the other ranks. A seat that finds every rank claimed is surplus (a
// repeat) and is acked. Rank r reads positions r, r+N, r+2N, ... of every
// epoch's seeded order (batches.Plan), so a step of gradient_accumulation_steps
// micro-batches on N ranks trains the micro-batches one trainer with N times
// the accumulation would, with the same LoRA dropout masks (keyed by the
// global position). Each step sums the counted tokens over the ranks first,
// then the gradients and losses (train.Collective): NCCL on GPUs when every
// rank has it, else NATS. Rank 0 alone publishes TrainingStarted, metrics,
// checkpoints and TrainingCompleted, so the tracker sees each step once.
//
// Faults: a rank whose peers do not all arrive within RendezvousTimeout
// fails the run, saying how many came. A peer lost during training (it left,
// or its claim ran out: its process died) ends the others' step with
// rendezvous.ErrPeerLost; they give their jobs back, and the world meets
// again once every seat has a trainer (the dead one's job returns after
// AckWait), resuming from the last checkpoint. After maxDeliveries attempts
// the run fails instead.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/rendezvous"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cuda"
	"github.com/eftml/eft/trainer/model"
)

// maxDeliveries bounds the attempts at one job (bus.JobConsumer.MaxDeliver).
const maxDeliveries = 5

var (
	// errSurplusSeat ends a seat job that found its run's world full.
	errSurplusSeat = errors.New("every rank of the run is taken: a surplus seat")
	// errRankLost ends a rank's attempt when a peer was lost: the job goes
	// back to the queue and the world meets again.
	errRankLost = errors.New("a rank of the world was lost")
)

// rankInfo is what a rank tells its peers when it claims its rank.
type rankInfo struct {
	// ResumeStep is the checkpoint step it continues from (0: the start):
	// every rank must continue from the same one.
	ResumeStep int `json:"resume_step"`
	// NCCL: this rank trains on a GPU and NCCL loads.
	NCCL bool `json:"nccl,omitempty"`
	// GPU names the rank's device as host:pid:cuda:N. NCCL refuses two
	// ranks on one device: ranks that share one (eft train's in-process
	// ranks) sum over NATS.
	GPU string `json:"gpu,omitempty"`
}

// world is this trainer's place in a data-parallel run.
type world struct {
	member *rendezvous.Member
	coll   *rankCollective
	// workers are the ranks' trainers, in rank order.
	workers []string
}

// rank is this trainer's rank, 0 without data parallelism.
func (r *run) rank() int {
	if r.world == nil {
		return 0
	}
	return r.world.member.Rank
}

// worldSize is the number of ranks (1 without data parallelism).
func (r *run) worldSize() int { return max(r.cfg.WorldSize, 1) }

// leader says whether this trainer publishes the run's events: rank 0.
func (r *run) leader() bool { return r.rank() == 0 }

// queueSeats queues seats 1..N-1 of the run's job, so that N trainers take it.
func (r *run) queueSeats(ctx context.Context) error {
	for seat := 1; seat < r.worldSize(); seat++ {
		p := r.spec
		p.Seat = seat
		env, err := events.NewCausedBy(r.job.Envelope, Name, p, fmt.Sprintf("seat-%d", seat))
		if err != nil {
			return err
		}
		if err := r.svc.bus.Publish(ctx, env); err != nil {
			return fmt.Errorf("data parallel: queueing seat %d of %d: %w", seat, r.worldSize(), err)
		}
	}
	return nil
}

// joinWorld claims a rank of the run's world, waits for every rank, checks
// that they all continue from the same step and sets up the collective.
func (r *run) joinWorld(ctx context.Context) error {
	n := r.worldSize()
	info := rankInfo{ResumeStep: r.resumed}
	if r.device.GPU != nil {
		if _, err := cuda.NCCLAvailable(); err == nil {
			info.NCCL = true
		}
		host, _ := os.Hostname()
		info.GPU = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), r.device.GPU.Name())
	}
	data, _ := json.Marshal(info)
	jctx, cancel := context.WithTimeout(ctx, r.svc.opts.RendezvousTimeout)
	defer cancel()
	go func() { // a run that fails or is cancelled meanwhile ends the wait
		for jctx.Err() == nil && !r.watch.stopped() {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
	}()
	m, err := rendezvous.Join(jctx, r.svc.bus.Conn(), r.job.Envelope.RunID, n, rendezvous.Options{
		Worker: r.svc.opts.Worker, Info: data, Lease: r.svc.opts.RankLease, FailIfFull: true,
	})
	switch {
	case errors.Is(err, rendezvous.ErrWorldFull):
		return errSurplusSeat
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil && r.watch.stopped():
		return errStopped
	case err != nil:
		pool := "the default pool"
		if r.spec.Pool != "" {
			pool = "pool " + r.spec.Pool
		}
		return fmt.Errorf("data parallel: world_size %d needs %d trainers of %s free at once; they did not all arrive within %s: %w",
			n, n, pool, r.svc.opts.RendezvousTimeout, err)
	}
	w := &world{member: m}
	r.world = w
	allNCCL := true
	gpus := map[string]bool{}
	for _, p := range m.Peers() {
		var pi rankInfo
		if err := json.Unmarshal(p.Info, &pi); err != nil {
			return fmt.Errorf("data parallel: rank %d (%s) sent %q: %w", p.Rank, p.Worker, p.Info, err)
		}
		if pi.ResumeStep != r.resumed {
			// A checkpoint was saved while the ranks prepared: meet again.
			return fmt.Errorf("rank %d (%s) continues from step %d, this rank from step %d: %w", p.Rank, p.Worker, pi.ResumeStep, r.resumed, errRankLost)
		}
		allNCCL = allNCCL && pi.NCCL && !gpus[pi.GPU]
		gpus[pi.GPU] = true
		w.workers = append(w.workers, p.Worker)
	}
	w.coll = &rankCollective{ctx: ctx, member: m, be: r.built.Model.Backend}
	if allNCCL {
		if w.coll.nccl, err = r.openNCCL(ctx, m); err != nil {
			return err
		}
	}
	r.trainer.Collective = w.coll
	how := "NATS"
	if w.coll.nccl != nil {
		how = "NCCL"
	}
	r.svc.bus.Logger().Info("trainer: data-parallel world met", "run", r.job.Envelope.RunID, "rank", m.Rank, "world", n,
		"workers", strings.Join(w.workers, ","), "gradients", how)
	return nil
}

// openNCCL makes the world's NCCL communicator: rank 0's unique id goes to
// the others through the rendezvous. An empty id (rank 0 could not make
// one) means every rank sums over NATS instead.
func (r *run) openNCCL(ctx context.Context, m *rendezvous.Member) (*cuda.Comm, error) {
	var id []byte
	if m.Rank == 0 {
		var err error
		if id, err = cuda.NCCLUniqueID(); err != nil {
			r.svc.bus.Logger().Warn("trainer: no NCCL unique id; summing gradients over NATS", "error", err)
			id = nil
		}
	}
	id, err := m.Broadcast(ctx, 1, id)
	if err != nil {
		return nil, fmt.Errorf("data parallel: NCCL unique id: %w", err)
	}
	if len(id) == 0 {
		return nil, nil
	}
	comm, err := r.device.GPU.NewComm(id, m.World, m.Rank, r.svc.opts.RendezvousTimeout)
	if err != nil {
		return nil, fmt.Errorf("data parallel: %w", err)
	}
	return comm, nil
}

// leaveWorld gives the rank back (the peers' collective ends at once).
func (r *run) leaveWorld(ctx context.Context) {
	if r.world == nil {
		return
	}
	if c := r.world.coll; c != nil && c.nccl != nil {
		c.nccl.Abort()
	}
	if err := r.world.member.Leave(context.WithoutCancel(ctx)); err != nil {
		r.svc.bus.Logger().Warn("trainer: leaving the data-parallel world", "error", err)
	}
	r.world = nil
}

// rankCollective is train.Collective for one rank: counts and loss sums
// over NATS in float64 (exact counts); gradients through NCCL, or over NATS
// in float32, summed in rank order (device gradients are downloaded and
// uploaded again).
type rankCollective struct {
	ctx    context.Context
	member *rendezvous.Member
	be     backend.Backend
	nccl   *cuda.Comm
	seq    uint64 // exchanges so far: every rank makes the same ones
	flat   []float32
	// inputTokens is this rank's input-token count of the coming step;
	// SumCounts sums it with the counts it is given, into worldTokens.
	inputTokens, worldTokens int64
}

func (c *rankCollective) next() uint64 { c.seq++; return c.seq }

func (c *rankCollective) SumCounts(counts []int64) error {
	v := make([]float64, len(counts)+1)
	for i, x := range counts {
		v[i] = float64(x)
	}
	v[len(counts)] = float64(c.inputTokens)
	if err := c.member.AllReduceSum64(c.ctx, c.next(), v); err != nil {
		return err
	}
	for i := range counts {
		counts[i] = int64(v[i])
	}
	c.worldTokens = int64(v[len(counts)])
	return nil
}

func (c *rankCollective) SumGradients(params []*model.Param, lossSum float64) (float64, error) {
	if c.nccl != nil {
		if err := c.nccl.SumGradients(params); err != nil {
			return 0, err
		}
	} else if err := c.sumOverNATS(params); err != nil {
		return 0, err
	}
	v := []float64{lossSum}
	if err := c.member.AllReduceSum64(c.ctx, c.next(), v); err != nil {
		return 0, err
	}
	return v[0], nil
}

func (c *rankCollective) sumOverNATS(params []*model.Param) error {
	n := 0
	for _, p := range params {
		n += p.G.Len()
	}
	if cap(c.flat) < n {
		c.flat = make([]float32, n)
	}
	flat := c.flat[:n]
	off := 0
	for _, p := range params {
		part := flat[off : off+p.G.Len()]
		if p.G.F32 != nil {
			copy(part, p.G.F32)
		} else {
			c.be.Download(part, p.G)
		}
		off += len(part)
	}
	if err := c.member.AllReduceSum(c.ctx, c.next(), flat); err != nil {
		return err
	}
	off = 0
	for _, p := range params {
		part := flat[off : off+p.G.Len()]
		if p.G.F32 != nil {
			copy(p.G.F32, part)
		} else {
			c.be.Upload(p.G, part)
		}
		off += len(part)
	}
	return nil
}
