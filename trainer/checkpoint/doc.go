// Package checkpoint saves and loads training checkpoints: the weights in
// Hugging Face layout (a PEFT adapter directory, or model.safetensors —
// sharded with an index above a size threshold — plus config.json and the
// other files copied from the base model) and eft's trainer state for exact
// resume: optimizer moments per parameter (optimizer.safetensors), and step,
// epoch, learning-rate schedule, RNG streams and data position
// (eft_trainer_state.json).
//
// A checkpoint directory appears atomically: everything is written into a
// temporary sibling directory, synced, and renamed into place, so a crash
// mid-save leaves the previous checkpoints untouched and no half-written
// checkpoint-N behind. Loading checks every file and names the one that is
// wrong.
//
// It does not decide when to save or what to publish (the trainer service
// does), and it does not write the Hugging Face Trainer's trainer_state.json
// log history.
package checkpoint
