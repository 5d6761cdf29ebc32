// Package safetensors reads and writes the safetensors format that Hugging Face
// transformers, peft and vLLM use for weights: an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range, then
// the raw little-endian tensor bytes.
//
// It owns: validating headers with errors that name the file and tensor (a
// truncated file, bad or overlapping offsets, an unknown dtype, a shape that
// does not match its byte size — never a panic); memory-mapping files where the
// platform allows it (a plain read otherwise); converting F32/F16/BF16/F64 to
// and from float32 (round-to-nearest-even, as torch does) and integer dtypes to
// int64; sharded models through `<name>.safetensors.index.json`; and writing
// files byte-for-byte the way the reference Rust implementation does
// (tensors ordered by dtype alignment then name, header padded with spaces to
// 8 bytes), sharded with an index above a size threshold.
//
// It does not know what the tensors mean: model configs live in shared/hfmodel,
// adapters in trainer/peft, checkpoints in trainer/checkpoint.
package safetensors
