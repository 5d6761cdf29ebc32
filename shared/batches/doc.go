// Package batches stores packed micro-batches (package packing) in a
// compact, versioned, checksummed binary file that trainers read by index,
// and decides which micro-batch a trainer reads at each step: a seeded
// order per epoch, so a resumed run continues exactly where it stopped and
// each data-parallel rank gets its own share without overlap.
//
// Layout (little-endian):
//
//	header  "EFTBATCH" | version u16 | flags u16 | pad token id i32 | header CRC-32C u32 (20 bytes)
//	records one per micro-batch, see encodeRecord
//	index   count × { offset u64 | length u32 | CRC-32C of the record u32 }
//	footer  index offset u64 | count u64 | CRC-32C of the index u32 | "EFTBEND!" (28 bytes)
//
// A record stores only the real tokens of each row: padding and position
// ids are rebuilt from the row lengths and sample boundaries, and labels are
// a bitmask (trained or -100) when they copy the input ids, as Axolotl's do.
// Token ids take 2, 3 or 4 bytes, whatever the record's largest id needs,
// or 2 bytes with an escape to 4 for the few large ids of a big vocabulary
// (version 2), whichever is smaller.
package batches
