// Package trainer is the root of eft's training engine: tensors and backends,
// model architectures with explicit forward and backward, LoRA, optimizers,
// schedules and checkpoints. Nothing under it knows about NATS.
package trainer
