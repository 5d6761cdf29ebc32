package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/config"
)

func init() { addCommand(newTrainCommand) }

func newTrainCommand(g *globals) *cobra.Command {
	cmd := configCommand(g, &cobra.Command{
		Use:   "train CONFIG [--device auto|cpu|cuda] [--key value ...]",
		Short: "Run a fine-tune: every service in this process on an embedded NATS server",
		Long: `Start NATS JetStream in-process (state under --home), start every service,
publish RunRequested for CONFIG (with Axolotl-style --key value overrides),
follow the run's events as they happen, and copy the outputs to output_dir.
With --nats the services run in this process against that server instead.
--device says where the trainer trains: auto (the default: CUDA when a GPU
is usable, else the CPU), cpu or cuda. A run with world_size N trains on N
trainers in this process (data parallel over the embedded server: a way to
check a data-parallel config; real speed comes from trainers on several
machines or GPUs, see docs/deploy.md).

The exit status is 0 only when the run completed; a stage that fails, or
is not available in this build, ends the run with its reason and status 1.`,
	}, func(cmd *cobra.Command, path string, overrides []string) error {
		if err := checkTrainerDevice(g); err != nil {
			return err
		}
		req, err := newRunRequest(path, overrides)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		// The all-in-one trainer serves the run's trainer_pool (an invalid
		// config fails at validate, as before).
		if cfg, _, err := config.Parse(path, []byte(req.Config.YAML), overrides); err == nil {
			g.TrainerPool = cfg.TrainerPool
			g.Trainers = cfg.WorldSize // a data-parallel run's ranks train here, side by side
		}
		sys, err := startSystem(ctx, g, "eft-train", serviceNames())
		if err != nil {
			return err
		}
		runErr := trainOnSystem(ctx, sys, req, cmd.OutOrStdout())
		if err := sys.Stop(); err != nil && runErr == nil {
			runErr = err
		}
		return runErr
	})
	addDeviceFlag(cmd, g)
	return cmd
}

// trainOnSystem publishes the request and follows the run to its end.
func trainOnSystem(ctx context.Context, sys *system, req events.RunRequested, out io.Writer) error {
	runID := events.NewRunID()
	ctx, span := otel.Tracer("github.com/eftml/eft/services/eft").Start(ctx, "eft train")
	defer span.End()
	env, err := events.New(runID, "eft", req)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "run %s\n", runID)
	if sys.tracker != nil {
		fmt.Fprintf(out, "tracker %s/api/runs/%s\n", sys.tracker.URL(), runID)
	}
	if err := sys.bus.Publish(ctx, env); err != nil {
		return err
	}
	w := newRunWatcher(sys.bus, req, out)
	err = follow(ctx, sys.bus, runID, w.handle)
	if ctx.Err() != nil {
		// Interrupted: say so on the bus, so that no stage keeps working on it.
		cctx := context.WithoutCancel(ctx)
		if _, perr := sys.bus.PublishNew(cctx, runID, "eft", events.RunCancelled{Reason: "interrupted", RequestedBy: "eft train"}); perr != nil {
			fmt.Fprintf(out, "could not publish RunCancelled: %v\n", perr)
		}
		return fmt.Errorf("run %s interrupted", runID)
	}
	if err != nil {
		return err
	}
	return w.result
}

// newRunRequest reads the config file as it is; validation is the validate
// stage's (and `eft config`'s) job.
func newRunRequest(path string, overrides []string) (events.RunRequested, error) {
	info, err := os.Stat(path)
	if err != nil {
		return events.RunRequested{}, fmt.Errorf("config: %w", err)
	}
	if info.Size() > events.MaxConfigBytes {
		return events.RunRequested{}, fmt.Errorf("config %s is %d bytes; a config is at most %d", path, info.Size(), events.MaxConfigBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return events.RunRequested{}, fmt.Errorf("config: %w", err)
	}
	wd, _ := os.Getwd()
	host, _ := os.Hostname()
	who := ""
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	return events.RunRequested{
		Config:  events.ConfigSource{FileName: path, YAML: string(data), Overrides: overrides},
		WorkDir: wd, Host: host, User: who,
	}, nil
}

// runWatcher prints a run's events and decides when it is over.
type runWatcher struct {
	bus       *bus.Bus
	out       io.Writer
	outputDir string
	total     int64
	result    error
	outputs   *trainOutputs
}

func newRunWatcher(b *bus.Bus, req events.RunRequested, out io.Writer) *runWatcher {
	w := &runWatcher{bus: b, out: out, outputs: newTrainOutputs(nil)}
	// Only to know how the run ends and where outputs go; an invalid
	// config is reported by the validate stage.
	if cfg, _, err := config.Parse(req.Config.FileName, []byte(req.Config.YAML), req.Config.Overrides); err == nil {
		w.outputs = newTrainOutputs(cfg)
		w.outputDir = cfg.OutputDir
		if w.outputDir != "" && !filepath.IsAbs(w.outputDir) && req.WorkDir != "" {
			w.outputDir = filepath.Join(req.WorkDir, w.outputDir)
		}
	}
	return w
}

func (w *runWatcher) handle(env events.Envelope) (bool, error) {
	w.outputs.observe(env)
	if env.Type == events.TypeMetricsLogged {
		if m, err := events.PayloadAs[events.MetricsLogged](env); err == nil {
			fmt.Fprintf(w.out, "%s %s%s\n", stamp(env.Time), metricsLine(m, w.total), eta(m, w.total))
			return false, nil
		}
	}
	for _, line := range describe(env.Type, env.Payload) {
		fmt.Fprintf(w.out, "%s %s\n", stamp(env.Time), line)
	}
	switch env.Type {
	case events.TypeTrainingStarted:
		if p, err := events.PayloadAs[events.TrainingStarted](env); err == nil {
			w.total = p.TotalSteps
		}
	case events.TypeRunFailed:
		p, _ := events.PayloadAs[events.RunFailed](env)
		w.result = fmt.Errorf("run %s failed at stage %s", env.RunID, p.Stage)
		return true, nil
	case events.TypeRunCancelled:
		w.result = fmt.Errorf("run %s was cancelled", env.RunID)
		return true, nil
	case events.TypeTrainingCompleted:
		p, err := events.PayloadAs[events.TrainingCompleted](env)
		if err != nil {
			return true, err
		}
		if err := w.copyOut(p.Files, w.outputDir); err != nil {
			w.result = err
			return true, nil
		}
		return w.finished()
	case events.TypeModelMerged:
		p, err := events.PayloadAs[events.ModelMerged](env)
		if err != nil {
			return true, err
		}
		if w.result = w.copyOut(p.Files, filepath.Join(w.outputDir, p.Dir)); w.result != nil {
			return true, nil
		}
		return w.finished()
	case events.TypeEvalCompleted:
		return w.finished()
	}
	return false, nil
}

// finished ends a successful run once its outputs are all in (merge and
// evaluations included), with trainer_state.json written.
func (w *runWatcher) finished() (bool, error) {
	if !w.outputs.done() {
		return false, nil
	}
	w.result = w.outputs.writeState(w.outputDir)
	return true, nil
}

// copyOut writes output files from the object store into dir.
func (w *runWatcher) copyOut(files []events.FileRef, dir string) error {
	if len(files) == 0 {
		return nil
	}
	if w.outputDir == "" {
		return errors.New("the run produced files but the config names no output_dir")
	}
	ctx := context.Background()
	stores := map[string]*artifacts.Store{}
	for _, f := range files {
		s, ok := stores[f.Artifact.Bucket]
		if !ok {
			var err error
			if s, err = artifacts.Open(ctx, w.bus.JetStream(), f.Artifact.Bucket, artifacts.Options{}); err != nil {
				return err
			}
			stores[f.Artifact.Bucket] = s
		}
		if err := s.GetFiles(ctx, []events.FileRef{f}, dir); err != nil {
			return err
		}
	}
	fmt.Fprintf(w.out, "wrote %d files to %s\n", len(files), dir)
	return nil
}
