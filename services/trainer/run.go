package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/rendezvous"
	"github.com/eftml/eft/trainer/checkpoint"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/schedule"
	"github.com/eftml/eft/trainer/train"
)

// run is one job in the hands of this trainer.
type run struct {
	svc     *Service
	job     *bus.Job
	spec    events.TrainJob
	cfg     *config.Config
	steps   runspec.Steps
	scratch string // this run's scratch folder

	store    *artifacts.Store // where outputs go
	batchF   *os.File
	batches  *batches.Reader
	tokDir   string // tokenizer files (for outputs)
	device   *device
	world    *world // nil unless world_size > 1
	built    *runspec.Built
	opt      optim.Optimizer
	hyper    map[string]float64
	sched    *schedule.Schedule
	trainer  *train.Trainer
	history  *runspec.History
	watch    *watcher
	attempt  int
	resumed  int   // steps done before this attempt (the checkpoint's)
	lastLog  int64 // the last step already in the log of record
	elapsed0 float64
	// interval accumulates the losses and tokens since the last log.
	interval struct {
		lossSum float64
		steps   int
		tokens  int
		since   time.Time
	}
	tokensSeen int64
	lastLoss   float64 // the last logged loss
	// kept are the checkpoints output_dir keeps (save_total_limit), oldest first.
	kept []savedCheckpoint
}

type savedCheckpoint struct {
	Name  string           `json:"name"`
	Files []events.FileRef `json:"files"`
}

// extra keys in a checkpoint's eft_trainer_state.json.
const (
	extraLossSum   = "log_loss_sum"
	extraLossSteps = "log_loss_steps"
	extraElapsed   = "elapsed_seconds"
	extraKept      = "kept_checkpoints"
)

func (s *Service) prepare(ctx context.Context, job *bus.Job, p events.TrainJob) (*run, error) {
	r := &run{svc: s, job: job, spec: p, attempt: int(job.Attempt)}
	var err error
	if r.cfg, err = runspec.ParseConfig(p.Config); err != nil {
		return nil, err
	}
	if r.cfg.WorldSize > 1 && p.Seat == 0 {
		if err := r.queueSeats(ctx); err != nil {
			return nil, err
		}
	}
	r.scratch = filepath.Join(s.opts.ScratchDir, job.Envelope.RunID)
	if err := os.MkdirAll(r.scratch, 0o755); err != nil {
		return nil, fmt.Errorf("trainer: scratch: %w", err)
	}
	if r.store, err = artifacts.Open(ctx, s.bus.JetStream(), s.opts.Bucket, artifacts.Options{}); err != nil {
		return nil, err
	}
	if err := r.openBatches(ctx); err != nil {
		r.close()
		return nil, err
	}
	perRank := batches.Plan{N: r.batches.Len(), World: r.worldSize()}.StepsPerEpoch()
	if perRank == 0 {
		r.close()
		return nil, fmt.Errorf("world_size %d: the run has %d training micro-batches, fewer than its ranks", r.worldSize(), r.batches.Len())
	}
	if r.steps, err = runspec.NewSteps(r.cfg, perRank); err != nil {
		r.close()
		return nil, err
	}
	if err := r.setupModel(ctx); err != nil {
		r.close()
		return nil, err
	}
	if r.watch, err = watchRun(ctx, r.svc.bus, job.Envelope.RunID, r.history); err != nil {
		r.close()
		return nil, err
	}
	if r.worldSize() > 1 {
		if err := r.joinWorld(ctx); err != nil {
			r.close()
			return nil, err
		}
	}
	return r, nil
}

// fetch makes ref's bytes available as a local file, downloaded once per
// content into the trainer's scratch folder.
func (s *Service) fetch(ctx context.Context, ref events.ArtifactRef) (string, error) {
	path := filepath.Join(s.opts.ScratchDir, "blobs", ref.SHA256)
	if info, err := os.Stat(path); err == nil && info.Size() == ref.Size {
		return path, nil
	}
	st, err := artifacts.Open(ctx, s.bus.JetStream(), ref.Bucket, artifacts.Options{})
	if err != nil {
		return "", err
	}
	if err := st.GetFile(ctx, ref, path); err != nil {
		return "", err
	}
	return path, nil
}

// fetchFiles writes files (paths relative to dir) into dir.
func (s *Service) fetchFiles(ctx context.Context, files []events.FileRef, dir string) error {
	byBucket := map[string][]events.FileRef{}
	for _, f := range files {
		byBucket[f.Artifact.Bucket] = append(byBucket[f.Artifact.Bucket], f)
	}
	for bucket, fs := range byBucket {
		st, err := artifacts.Open(ctx, s.bus.JetStream(), bucket, artifacts.Options{})
		if err != nil {
			return err
		}
		if err := st.GetFiles(ctx, fs, dir); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) openBatches(ctx context.Context) error {
	if r.spec.Format != batches.Format {
		return fmt.Errorf("train batches %s are in format %q; this trainer reads only %q (were they made by another version of eft?)", r.spec.Train, r.spec.Format, batches.Format)
	}
	path, err := r.svc.fetch(ctx, r.spec.Train)
	if err != nil {
		return fmt.Errorf("train batches: %w", err)
	}
	if r.batchF, err = os.Open(path); err != nil {
		return err
	}
	if r.batches, err = batches.Open(r.batchF, r.spec.Train.Size); err != nil {
		return fmt.Errorf("train batches %s: %w", r.spec.Train, err)
	}
	if int64(r.batches.Len()) != r.spec.MicroBatches {
		return fmt.Errorf("train batches %s hold %d micro-batches; the job says %d", r.spec.Train, r.batches.Len(), r.spec.MicroBatches)
	}
	return nil
}

// resumePoint finds the checkpoint this job continues from: the run's own
// latest CheckpointSaved (a trainer died or gave the job back), else
// resume_from_checkpoint, else with auto_resume_from_checkpoints the latest
// checkpoint in output_dir. It returns a local checkpoint directory ("" for
// a fresh start) and, when it is the run's own, its CheckpointSaved.
func (r *run) resumePoint(ctx context.Context) (string, *events.CheckpointSaved, error) {
	saved, ok, err := runspec.LastPayload[events.CheckpointSaved](ctx, r.svc.bus, r.job.Envelope.RunID)
	if err != nil {
		return "", nil, err
	}
	if ok {
		dir := filepath.Join(r.scratch, "resume", saved.Name)
		if err := os.RemoveAll(dir); err != nil {
			return "", nil, err
		}
		if err := r.svc.fetchFiles(ctx, saved.Files, dir); err != nil {
			return "", nil, fmt.Errorf("resuming from %s: %w", saved.Name, err)
		}
		return dir, &saved, nil
	}
	if r.cfg.ResumeFromCheckpoint != "" {
		return runspec.LocalPath(r.cfg.ResumeFromCheckpoint, r.spec.WorkDir), nil, nil
	}
	if r.cfg.AutoResumeFromCheckpoints {
		dir, err := checkpoint.Latest(runspec.LocalPath(r.cfg.OutputDir, r.spec.WorkDir))
		return dir, nil, err
	}
	return "", nil, nil
}

func (r *run) setupModel(ctx context.Context) error {
	cfg, workDir := r.cfg, r.spec.WorkDir
	var baseDir string
	var err error
	if len(r.spec.BaseModel) > 0 {
		baseDir = filepath.Join(r.scratch, "base")
		if err := r.svc.fetchFiles(ctx, r.spec.BaseModel, baseDir); err != nil {
			return fmt.Errorf("base model: %w", err)
		}
	} else if baseDir, err = r.svc.opts.Resolver.BaseModelDir(ctx, cfg, workDir); err != nil {
		return err
	}
	if len(r.spec.Tokenizer) > 0 {
		r.tokDir = filepath.Join(r.scratch, "tokenizer")
		if err := r.svc.fetchFiles(ctx, r.spec.Tokenizer, r.tokDir); err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
	} else if r.tokDir, err = r.svc.opts.Resolver.TokenizerDir(ctx, cfg, workDir, baseDir); err != nil {
		return err
	}

	resumeDir, saved, err := r.resumePoint(ctx)
	if err != nil {
		return err
	}
	var loaded *checkpoint.Loaded
	if resumeDir != "" {
		if loaded, err = checkpoint.Load(resumeDir); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		if want := runspec.Kind(cfg); loaded.State.Kind != want {
			return fmt.Errorf("resume: %s holds %s weights; this run trains %s weights", resumeDir, loaded.State.Kind, want)
		}
	}
	if r.device, err = r.svc.openDevice(cfg); err != nil {
		return err
	}
	be := r.device.Backend
	modelDir := baseDir
	if loaded != nil && loaded.State.Kind == checkpoint.KindFull {
		modelDir = resumeDir // a full checkpoint is a model directory
	}
	if r.built, err = r.svc.opts.Resolver.Build(cfg, modelDir, workDir, be); err != nil {
		return err
	}
	r.built.BaseDir = baseDir
	if loaded != nil && loaded.State.Kind == checkpoint.KindAdapter {
		if r.built.Adapter, err = lora.Load(r.built.Model, resumeDir); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	}
	if r.opt, r.hyper, err = runspec.NewOptimizer(cfg); err != nil {
		return err
	}
	if r.opt, err = r.device.prepare(r.built.Model, r.opt); err != nil {
		return err
	}
	if r.sched, err = runspec.NewSchedule(cfg, r.steps); err != nil {
		return err
	}
	if r.trainer, err = train.New(r.built.Model, r.opt, cfg.MaxGradNorm); err != nil {
		return err
	}
	r.history = runspec.NewHistory(cfg, r.steps)
	if loaded != nil {
		if err := r.restore(loaded, saved); err != nil {
			return fmt.Errorf("resume from %s: %w", resumeDir, err)
		}
	}
	return nil
}

// restore takes the optimizer moments, step, logging interval, history and
// kept checkpoints from a loaded checkpoint (saved: the run's own).
func (r *run) restore(l *checkpoint.Loaded, saved *events.CheckpointSaved) error {
	if err := r.opt.LoadState(l.Optimizer); err != nil {
		return err
	}
	st := l.State
	if st.Step > int64(r.steps.TotalSteps) {
		return fmt.Errorf("checkpoint is at step %d, past this run's %d steps", st.Step, r.steps.TotalSteps)
	}
	r.resumed = int(st.Step)
	r.tokensSeen = st.Data.TokensSeen
	readExtra := func(key string, into any) error {
		if raw, ok := st.Extra[key]; ok {
			if err := json.Unmarshal(raw, into); err != nil {
				return fmt.Errorf("%s: %s: %w", checkpoint.StateFile, key, err)
			}
		}
		return nil
	}
	if err := errors.Join(
		readExtra(extraLossSum, &r.interval.lossSum),
		readExtra(extraLossSteps, &r.interval.steps),
		readExtra(extraElapsed, &r.elapsed0),
		readExtra(extraKept, &r.kept),
	); err != nil {
		return err
	}
	if saved != nil && r.steps.SaveAt(r.resumed) {
		r.keep(savedCheckpoint{Name: saved.Name, Files: saved.Files})
	}
	if data, err := os.ReadFile(filepath.Join(l.Dir, runspec.StateFile)); err == nil {
		if err := r.history.Load(data); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) close() {
	r.leaveWorld(context.Background())
	if r.watch != nil {
		r.watch.stop()
	}
	if r.batchF != nil {
		r.batchF.Close()
	}
	r.device.close()
	if r.scratch != "" {
		os.RemoveAll(r.scratch)
	}
}

// dropoutSeed keys the LoRA dropout masks of the micro-batch at position k
// of an epoch's order: the same on every attempt, so a resumed run draws the
// masks it would have drawn (splitmix64 over seed, epoch and position).
func dropoutSeed(seed uint64, epoch, k int) uint64 {
	x := seed ^ uint64(epoch)*0x9e3779b97f4a7c15 ^ uint64(k)*0xbf58476d1ce4e5b9
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// train runs the steps from the resume point to the end.
func (r *run) train(ctx context.Context) error {
	b, env := r.svc.bus, r.job.Envelope
	var err error
	if m, ok, err := runspec.LastPayload[events.MetricsLogged](ctx, b, env.RunID); err != nil {
		return err
	} else if ok {
		r.lastLog = m.Step
		r.lastLoss = float64(m.Values["loss"])
	}
	start := time.Now()
	trainable, total := paramCounts(r.built.Model)
	worker := r.svc.opts.Worker
	if r.world != nil {
		worker = strings.Join(r.world.workers, ",")
	}
	started := events.TrainingStarted{
		Worker: worker, Device: r.device.Name, Method: runspec.Method(r.cfg),
		TotalSteps: int64(r.steps.TotalSteps), Epochs: int(r.cfg.NumEpochs + 0.999999),
		MicroBatchSize: r.spec.MicroBatchSize, GradientAccumulationSteps: r.steps.GradAccum,
		SequenceLen: r.spec.SequenceLen, WorldSize: r.worldSize(), TrainableParams: trainable, TotalParams: total,
		ResumedFromStep: int64(r.resumed), Attempt: r.attempt,
	}
	if r.leader() {
		if err := r.publish(ctx, started, fmt.Sprintf("attempt-%d", r.attempt)); err != nil {
			return err
		}
	}
	seed := uint64(r.cfg.Seed)
	rank, size := r.rank(), r.worldSize()
	plan := batches.Plan{N: r.batches.Len(), Seed: seed, Rank: rank, World: size}
	order, orderEpoch := []int(nil), -1
	r.interval.since = time.Now()
	for done := r.resumed; done < r.steps.TotalSteps; done++ {
		if r.watch.stopped() {
			return errStopped
		}
		epoch, inEpoch := r.steps.EpochOf(done)
		if epoch != orderEpoch {
			if order, err = plan.Epoch(epoch); err != nil {
				return err
			}
			orderEpoch = epoch
		}
		lo, hi := r.steps.Group(inEpoch)
		micro := make([]*model.Batch, 0, hi-lo)
		tokens := 0
		for k := lo; k < hi; k++ {
			mb, err := r.batches.Read(order[k])
			if err != nil {
				return err
			}
			for _, n := range mb.RowLengths {
				tokens += int(n)
			}
			// k*size+rank is the micro-batch's place in the epoch's order
			// of all ranks: its masks are the ones one trainer would draw.
			micro = append(micro, train.FromPacked(&mb, dropoutSeed(seed, epoch, k*size+rank)))
		}
		if r.world != nil {
			r.world.coll.inputTokens = int64(tokens)
		}
		res, err := r.trainer.Step(micro, r.sched.LR(done))
		if err != nil {
			if r.world != nil && errors.Is(err, rendezvous.ErrPeerLost) {
				if r.watch.stoppedWithin(2 * time.Second) {
					return errStopped // a peer stopped for a cancel this rank had not seen yet
				}
				return fmt.Errorf("step %d: %w: %w", done+1, errRankLost, err)
			}
			return fmt.Errorf("step %d: %w", done+1, err)
		}
		if r.world != nil {
			tokens = int(r.world.coll.worldTokens)
		}
		d := done + 1
		r.tokensSeen += int64(tokens)
		r.interval.lossSum += res.Loss
		r.interval.steps++
		r.interval.tokens += tokens
		elapsed := r.elapsed0 + time.Since(start).Seconds()
		if r.steps.LogAt(d) && r.leader() {
			if err := r.logMetrics(ctx, d, res, elapsed); err != nil {
				return err
			}
		}
		if r.steps.CheckpointAt(d) && r.leader() {
			if r.watch.stopped() {
				return errStopped // cancelled during the step: nothing more is published
			}
			if err := r.saveCheckpoint(ctx, d, elapsed); err != nil {
				return err
			}
		}
		if hook := r.svc.opts.AfterStep; hook != nil {
			hook(d)
		}
	}
	if r.watch.stopped() {
		return errStopped
	}
	if !r.leader() {
		return nil // rank 0 publishes the outputs
	}
	return r.complete(ctx, r.elapsed0+time.Since(start).Seconds())
}

func (r *run) logMetrics(ctx context.Context, d int, res train.StepResult, elapsed float64) error {
	secs := time.Since(r.interval.since).Seconds()
	m := events.MetricsLogged{Step: int64(d), Epoch: r.steps.Epoch(d), Values: map[string]events.Metric{
		"loss":            events.Metric(r.interval.lossSum / float64(r.interval.steps)),
		"learning_rate":   events.Metric(r.sched.LR(d)), // the next update's, as the HF Trainer logs it
		"grad_norm":       events.Metric(res.GradNorm),
		"elapsed_seconds": events.Metric(elapsed),
		"memory_bytes":    events.Metric(r.device.memoryBytes()),
	}}
	if secs > 0 && r.interval.tokens > 0 {
		m.Values["tokens_per_second"] = events.Metric(float64(r.interval.tokens) / secs)
	}
	r.lastLoss = float64(m.Values["loss"])
	r.interval.lossSum, r.interval.steps, r.interval.tokens, r.interval.since = 0, 0, 0, time.Now()
	r.history.AddMetrics(m)
	if m.Step <= r.lastLog {
		return nil // a trainer before this one logged this step already
	}
	return r.publish(ctx, m, fmt.Sprintf("step-%d", d))
}

// publish sends payload as this job's reaction, with an id derived from
// the job and discriminator: a repeat (a resumed attempt redoing a step) is
// stored once.
func (r *run) publish(ctx context.Context, payload events.Payload, discriminator string) error {
	env, err := events.NewCausedBy(r.job.Envelope, Name, payload, discriminator)
	if err != nil {
		return err
	}
	return r.svc.bus.Publish(ctx, env)
}

func paramCounts(m *model.Model) (trainable, total int64) {
	for _, p := range append(m.Params(), m.LoRAParams()...) {
		n := int64(p.W.Len())
		total += n
		if p.Trainable() {
			trainable += n
		}
	}
	return trainable, total
}

var memStatsMu sync.Mutex

// memoryInUse is the memory the Go runtime holds from the system (the
// process's footprint for a CPU run).
func memoryInUse() float64 {
	memStatsMu.Lock()
	defer memStatsMu.Unlock()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Sys - ms.HeapReleased)
}
