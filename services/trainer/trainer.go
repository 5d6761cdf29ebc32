package trainer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/bus"
)

// Name is the service's name and durable consumer.
const Name = "trainer"

// Options configure a trainer. The zero value trains on the CPU with
// scratch space under the system's temporary directory.
type Options struct {
	// Worker names this trainer in TrainingStarted (default host:pid).
	Worker string
	// ScratchDir holds downloaded batches and checkpoints being written
	// (default $TMPDIR/eft-trainer). A run's folder is removed when it ends.
	ScratchDir string
	// AckWait is how long a job may go without a heartbeat before another
	// trainer gets it (0: bus default, 60s).
	AckWait time.Duration
	// Device is where jobs train: runspec.DeviceAuto ("" too: CUDA when a
	// GPU is usable, else the CPU), DeviceCPU or DeviceCUDA. Each job opens its
	// backend and closes it when the job ends.
	Device string
	// Resolver finds base models (local directories or hub repo ids).
	Resolver runspec.Resolver
	// Bucket is the object store bucket outputs go to (default
	// artifacts.DefaultBucket).
	Bucket string
	// MaxShardSize splits a full model's weights into shards above this
	// many bytes (0: 5 GB, as transformers).
	MaxShardSize int64
	// AfterStep, when set, runs after every optimizer step with the number
	// of steps done (tests use it to pace or stop a run).
	AfterStep func(done int)
	// Pool is the trainer pool this trainer serves: it takes the jobs of
	// runs whose trainer_pool names it, and no others. Empty: runs without one.
	Pool string
	// RendezvousTimeout is how long a trainer of a data-parallel run waits
	// for the other ranks before failing the run (0: 10 minutes).
	RendezvousTimeout time.Duration
	// RankLease is how long a data-parallel rank's claim outlives its last
	// refresh: a dead trainer's peers notice within about this (0: 15s).
	RankLease time.Duration
}

// Service is the trainer service.
type Service struct {
	bus  *bus.Bus
	opts Options
}

// New returns the trainer service over b.
func New(b *bus.Bus, opts Options) *Service {
	if opts.Worker == "" {
		host, _ := os.Hostname()
		opts.Worker = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if opts.ScratchDir == "" {
		opts.ScratchDir = filepath.Join(os.TempDir(), "eft-trainer")
	}
	if opts.Bucket == "" {
		opts.Bucket = artifacts.DefaultBucket
	}
	if opts.RendezvousTimeout == 0 {
		opts.RendezvousTimeout = 10 * time.Minute
	}
	return &Service{bus: b, opts: opts}
}

// Run takes jobs until ctx ends. A job in hand when ctx ends goes back to
// the queue (after AckWait) and is resumed from its last checkpoint.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.ServeJobs(ctx, bus.JobConsumer{Name: ConsumerName(s.opts.Pool), Subjects: []string{events.PoolTrainJobs(s.opts.Pool)},
		Handler: s.handleJob, AckWait: s.opts.AckWait, MaxDeliver: maxDeliveries})
}

// ConsumerName is the durable work-queue consumer the trainers of pool
// share: "trainer", or "trainer-<pool>".
func ConsumerName(pool string) string {
	if pool == "" {
		return Name
	}
	return Name + "-" + pool
}

// errStopped ends a job whose run was cancelled or failed elsewhere.
var errStopped = errors.New("the run was stopped")

// handleJob trains one job. It returns nil (ack: the run's training is over,
// one way or another) unless this process is shutting down, which leaves the
// job to the next trainer.
func (s *Service) handleJob(ctx context.Context, job *bus.Job) (err error) {
	env := job.Envelope
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 8<<10)
			buf = buf[:runtime.Stack(buf, false)]
			err = s.fail(ctx, env, fmt.Errorf("trainer panicked: %v\n%s", r, buf), false)
		}
	}()
	p, err := events.PayloadAs[events.TrainJob](env)
	if err != nil {
		return s.fail(ctx, env, err, false)
	}
	ended, err := runspec.Ended(ctx, s.bus, env.RunID, events.TypeRunFailed, events.TypeRunCancelled, events.TypeTrainingCompleted)
	if err != nil {
		return err // the bus is unwell: try again later
	}
	if ended != "" {
		s.bus.Logger().Info("trainer: job for a run that already ended", "run", env.RunID, "ended_by", ended)
		return nil
	}
	r, err := s.prepare(ctx, job, p)
	if err == nil {
		defer r.close()
		err = r.train(ctx)
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errStopped):
		return nil
	case errors.Is(err, errSurplusSeat):
		s.bus.Logger().Info("trainer: surplus seat of a data-parallel run", "run", env.RunID, "seat", p.Seat)
		return nil
	case errors.Is(err, errRankLost) && job.Attempt < maxDeliveries:
		// Give the job back: the world meets again and resumes from the
		// last checkpoint once every seat has a trainer.
		s.bus.Logger().Warn("trainer: data-parallel rank lost; giving the job back", "run", env.RunID, "attempt", job.Attempt, "error", err)
		return err
	case errors.Is(err, errRankLost):
		return s.fail(ctx, env, fmt.Errorf("data parallel: a rank was lost on each of %d attempts: %w", job.Attempt, err), false)
	case err != nil:
		return s.fail(ctx, env, err, false)
	}
	return nil
}

// fail ends the job's run with RunFailed at stage train; the job is done.
func (s *Service) fail(ctx context.Context, cause events.Envelope, err error, retryable bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.bus.Logger().Error("trainer: run failed", "run", cause.RunID, "error", err)
	if perr := stage.Fail(ctx, s.bus, cause, Name, events.StageTrain, err, retryable); perr != nil {
		return perr // could not say so: let the job come back
	}
	return nil
}
