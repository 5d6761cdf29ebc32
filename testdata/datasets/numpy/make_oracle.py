#!/usr/bin/python3
"""Writes oracle.json: what numpy's default_rng(seed) gives, for the Go port in
shared/datasets/nprandom.go.

Hugging Face datasets shuffles with np.random.default_rng(seed).permutation(n)
(Dataset.shuffle; train_test_split(shuffle=True) too), so these are the orders
Axolotl's `seed:` produces. Run with any numpy >= 1.17 (made with Debian's
python3-numpy 1.24.2; the algorithms are unchanged in numpy 2.x):

    /usr/bin/python3 testdata/datasets/numpy/make_oracle.py > testdata/datasets/numpy/oracle.json
"""
import ctypes
import hashlib
import json

import numpy as np

SEEDS = [0, 1, 42, 1234, 2**32 - 1, 2**32, 2**63 - 1]
FULL = [0, 1, 2, 3, 5, 10, 33, 100, 1000]  # lengths whose whole permutation is kept
DIGEST = [65537, 100000]                    # lengths kept as a digest + head and tail


def perm_digest(p):
    """SHA-256 of the permutation as little-endian int64s."""
    return hashlib.sha256(np.asarray(p, dtype="<i8").tobytes()).hexdigest()


def raw_draws(seed):
    """The bit generator's own outputs, 32- and 64-bit draws interleaved,
    through the C functions numpy's shuffle calls (next_uint32 keeps the
    upper half of a 64-bit output for the next 32-bit draw)."""
    bg = np.random.PCG64(seed)
    c = bg.ctypes
    n32 = ctypes.cast(c.next_uint32, ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p))
    n64 = ctypes.cast(c.next_uint64, ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p))
    pattern = "3336333666663663"
    out = []
    for kind in pattern:
        out.append({"bits": 32, "value": str(n32(c.state))} if kind == "3" else {"bits": 64, "value": str(n64(c.state))})
    return out


def main():
    out = {"numpy": np.__version__, "seeds": []}
    for seed in SEEDS:
        ss = np.random.SeedSequence(seed)
        entry = {
            "seed": str(seed),
            "pool": [int(x) for x in ss.pool],
            "state_uint64": [str(int(x)) for x in ss.generate_state(4, np.uint64)],
            "raw": raw_draws(seed),
            "permutations": [],
        }
        for n in FULL:
            p = np.random.default_rng(seed).permutation(n)
            entry["permutations"].append({"n": n, "perm": [int(x) for x in p]})
        for n in DIGEST:
            p = np.random.default_rng(seed).permutation(n)
            entry["permutations"].append({"n": n, "sha256_le_int64": perm_digest(p),
                                          "head": [int(x) for x in p[:16]], "tail": [int(x) for x in p[-16:]]})
        out["seeds"].append(entry)
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
