#!/usr/bin/env bash
# gpucheck.sh: the CUDA backend's checks on a GPU machine, prepared without one.
#
#   trainer/cuda/gpucheck.sh build   # here, no GPU needed: builds into bin/gpucheck/ (git-ignored)
#   trainer/cuda/gpucheck.sh run [tests] [e2e] [bench] [qlora] [profile]
#                                    # on the GPU machine (no Go needed there): logs to $OUT;
#                                    # no part named: tests, e2e and bench
#
# build makes, with CGO_ENABLED=0, the cuda package's test binary and the eft
# binary. run executes, each under its own timeout so the whole run stays
# under ~9 minutes: nvidia-smi; every op's GPU-vs-CPU parity test and the
# whole-model parity tests on the GPU (the emulator is skipped there); then
# eft bench on the tiny shape and the issue's three workloads. Logs and JSON
# figures land in $OUT (default ./gpucheck-out): nvidia-smi.txt, tests.log,
# bench.log, bench.jsonl. profile runs the three workloads for two steps
# with EFT_CUDA_PROFILE=1 and writes each kernel's device time per step to
# profile.log. e2e trains the tiny example through eft train on the CPU and
# on CUDA and compares the loss curves (services/eft's
# TestTinyExampleTrainsOnCUDA) and two data-parallel ranks on one GPU against one
# trainer accumulating 2 (TestDataParallelOnCUDA), logging to e2e.log. qlora adds the 8B
# workload with an NF4 base to bench.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/bin/gpucheck"

case "${1:-}" in
build)
	set -e
	mkdir -p "$bin"
	cd "$root"
	export CGO_ENABLED=0
	go test -c -ldflags='-s -w' -o "$bin/cuda.test" ./trainer/cuda
	go build -ldflags='-s -w' -o "$bin/eft" ./services/eft
	go test -c -ldflags='-s -w' -o "$bin/eft.test" ./services/eft
	# gzip: the working tree and what it carries must stay under the device
	# machine's 64 MiB, and the eft binary alone is ~39 MB.
	gzip -9f "$bin/cuda.test" "$bin/eft" "$bin/eft.test"
	ls -l "$bin"
	;;
run)
	out="${OUT:-$root/gpucheck-out}"
	mkdir -p "$out"
	[ -f "$bin/cuda.test.gz" ] && [ -f "$bin/eft.gz" ] || { echo "gpucheck: run '$0 build' first (and carry bin/gpucheck)"; exit 2; }
	run=/tmp/gpucheck-bin
	mkdir -p "$run"
	for f in cuda.test eft eft.test; do gunzip -c "$bin/$f.gz" >"$run/$f" && chmod +x "$run/$f"; done
	bin=$run
	export EFT_CUDA_KERNEL_CACHE="${EFT_CUDA_KERNEL_CACHE:-/tmp/eft-cuda-kernels}"
	shift
	parts=" ${*:-tests e2e bench} "
	{ nvidia-smi; nvidia-smi -q | head -40; } >"$out/nvidia-smi.txt" 2>&1
	if [[ $parts == *" tests "* ]]; then
		echo "== tests (GPU parity, emulator skipped)"
		(cd "$here" && EFT_CUDA_SKIP_EMULATOR=1 timeout 200 "$bin/cuda.test" -test.v -test.timeout 190s) >"$out/tests.log" 2>&1
		echo "tests exit $?" | tee -a "$out/tests.log"
		grep -E '^(--- |=== RUN|ok|FAIL|PASS)|parity|differs|no GPU|panic' "$out/tests.log" | grep -v '=== RUN' | grep -v -- '--- PASS.*/' | head -60
	fi
	if [[ $parts == *" e2e "* ]]; then
		echo "== e2e: the tiny example on cpu and cuda"
		(cd "$root/services/eft" && timeout 240 "$bin/eft.test" -test.run 'TestTinyExampleTrainsOnCUDA|TestDataParallelOnCUDA' -test.v -test.timeout 230s) >"$out/e2e.log" 2>&1
		echo "e2e exit $?" | tee -a "$out/e2e.log"
		grep -E -A4 '^(--- |ok|FAIL|PASS)|losses|differs|step [0-9]' "$out/e2e.log" | head -30
	fi
	if [[ $parts == *" profile "* ]]; then
		for w in "--shape llama-3.2-1b --lora-r 16 --batch 4 --seq 2048" "--shape llama-3.2-1b --full --batch 4 --seq 2048" \
			"--shape llama-3-8b --lora-r 16 --batch 2 --seq 2048 --grad-checkpointing"; do
			echo "== profile eft bench $w" | tee -a "$out/profile.log"
			# shellcheck disable=SC2086
			EFT_CUDA_PROFILE=1 timeout 90 "$bin/eft" bench --device cuda $w --steps 2 --warmup 1 2>&1 | head -60 | tee -a "$out/profile.log" | head -25
		done
	fi
	[[ $parts == *" bench "* ]] || exit 0
	: >"$out/bench.jsonl"
	bench() { # seconds, then eft bench flags; one JSON object per run
		local limit=$1
		shift
		echo "== eft bench $*" | tee -a "$out/bench.log"
		timeout "$limit" "$bin/eft" bench --device cuda --json "$@" >"$out/last.json" 2>>"$out/bench.log"
		echo "exit $?" | tee -a "$out/bench.log"
		cat "$out/last.json" | tee -a "$out/bench.log"
		tr -d '\n' <"$out/last.json" >>"$out/bench.jsonl" && echo >>"$out/bench.jsonl"
		rm -f "$out/last.json"
	}
	bench 30 --shape tiny --batch 2 --seq 64 --steps 3
	bench 90 --shape llama-3.2-1b --lora-r 16 --batch 4 --seq 2048
	bench 90 --shape llama-3.2-1b --full --batch 4 --seq 2048
	bench 120 --shape llama-3-8b --lora-r 16 --batch 2 --seq 2048 --grad-checkpointing
	[[ $parts == *" qlora "* ]] && bench 150 --shape llama-3-8b --qlora --lora-r 16 --batch 2 --seq 2048 --grad-checkpointing
	;;
*)
	sed -n '2,16p' "$0"
	exit 2
	;;
esac
