// Package datasets reads the raw rows of an Axolotl `datasets:` entry: local
// .json/.jsonl/.parquet/.csv/.txt/.arrow files, folders of them, what
// `datasets.save_to_disk` writes, https URLs and (through package hub)
// Hugging Face dataset repos. It owns the row model (ordered JSON-like records
// that remember their file and line), the bad-row policy and its report,
// and what Axolotl's dataset-level steps take from Hugging Face datasets:
// numpy's seeded permutation (the order shuffle(seed) gives) and
// val_set_size's count (train_test_split).
//
// It does not tokenize, apply prompt strategies or talk to the bus: the
// ingest service reads and merges the rows; the tokenizer service shuffles,
// deduplicates and splits the tokenized samples, where Axolotl does.
package datasets
