// Package packing turns tokenized samples into micro-batches the way
// Axolotl's multipack sampler does: first-fit-decreasing bins of
// sequence_len tokens per row, micro_batch_size rows per micro-batch,
// position ids restarting at every sample, and each row's sample boundaries
// (cu_seqlens) kept so attention never crosses from one sample into another.
// Without packing it pads instead (to sequence_len with pad_to_sequence_len,
// else to the longest row of the micro-batch).
//
// A Sample holds its labels as labels or, when they only copy or ignore the
// input ids (every prompt strategy but pre-tokenized rows), as a bit mask of
// the trained tokens.
//
// Everything is deterministic for a given seed. The package does not
// tokenize, mask labels or encode batches (see package batches).
package packing
