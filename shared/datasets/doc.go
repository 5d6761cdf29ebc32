// Package datasets reads the raw rows of an Axolotl `datasets:` entry: local
// .json/.jsonl/.parquet/.csv/.txt/.arrow files, folders of them, what
// `datasets.save_to_disk` writes, https URLs and (through package hub)
// Hugging Face dataset repos. It owns the row model (ordered JSON-like records
// that remember their file and line), the bad-row policy and its report, and
// the dataset-level operations Axolotl applies before tokenizing: merging,
// seeded shuffling, exact deduplication and the validation split.
//
// It does not tokenize, apply prompt strategies or talk to the bus: the
// ingest service composes these pieces and publishes the result.
package datasets
