// Package runspec is what the stages after tokenize (trainer, evaluator,
// merger) and the eft CLI agree on about a run, derived from its resolved
// config and its events rather than sent between them:
//
//   - the step plan: how many optimizer steps an epoch has, and at which
//     steps the trainer logs, saves and the evaluator evaluates (Steps);
//   - the model a run trains: where its base model is (a local Hugging Face
//     directory, or a hub repo id resolved into the hub cache), and how the
//     config turns into a LoRA adapter or a full fine-tune, an optimizer and
//     a learning-rate schedule;
//   - the Hugging Face Trainer's trainer_state.json (log history) built from
//     MetricsLogged and EvalCompleted events.
//
// It holds no state of its own: what it needs to know about a run it reads
// from the run's events in the log of record (LastEvent).
package runspec
