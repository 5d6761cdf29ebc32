// Package trainer is the trainer service: it takes train jobs from the work
// queue one at a time (bus.ServeJobs: PullMaxMessages(1), heartbeats while it
// trains, acked when the run's training ended) and trains the run with the
// engine (trainer/...): the base model as the config sets it up (LoRA or
// full), the packed micro-batches in the run's seeded order, the config's
// optimizer, schedule, accumulation, clipping, epochs and max_steps.
//
// It publishes TrainingStarted, MetricsLogged every logging_steps,
// CheckpointSaved at save and eval steps (weights and exact-resume state,
// every file an artifact), and TrainingCompleted with the final outputs in
// output_dir's layout — or RunFailed. RunCancelled (or a RunFailed from
// another stage) stops the run before its next step; nothing partial is
// published as final.
//
// A job for a run that already has a CheckpointSaved resumes from the latest
// one: same weights, optimizer moments, schedule position, data order and
// dropout masks, so the losses continue exactly as without the break. Every
// event a job publishes has an id derived from the job and what it says
// (the step, the checkpoint name), so a resumed trainer that repeats a step
// the dead one already reported publishes nothing new.
//
// Each job trains on Options.Device (device.go: auto takes CUDA when a GPU
// is usable), and a run with world_size N > 1 trains on N trainers at once,
// rank 0 publishing for all (dp.go; docs/deploy.md "Data parallel").
package trainer
