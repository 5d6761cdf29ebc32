#!/usr/bin/env bash
# Builds eft's image(s) from infra/Dockerfile with buildah (no Docker engine
# needed; `apt-get install buildah`), or with `docker build` when there is a
# Docker engine and no buildah.
#
#   infra/build-images.sh            localhost/eft:latest, FROM scratch
#   infra/build-images.sh --cuda     also localhost/eft-cuda:latest, FROM $CUDA_BASE
#   infra/build-images.sh --check    build, inspect (non-root user, entrypoint), remove;
#                                    exits 0 with a note when buildah is absent (CI)
#
# Environment: EFT_IMAGE (tag), CUDA_BASE, BUILDAH_ROOT (buildah's storage;
# default its own), BUILDAH_FLAGS (extra flags, e.g. --storage-driver vfs).
set -euo pipefail
cd "$(dirname "$0")/.."

image=${EFT_IMAGE:-localhost/eft:latest}
cuda_image=${EFT_CUDA_IMAGE:-localhost/eft-cuda:latest}
cuda_base=${CUDA_BASE:-nvcr.io/nvidia/cuda:13.0.1-runtime-ubuntu24.04}
cuda=0 check=0
for arg in "$@"; do
  case $arg in
    --cuda) cuda=1 ;;
    --check) check=1 ;;
    *) echo "usage: $0 [--cuda] [--check]" >&2; exit 2 ;;
  esac
done

builder=()
if [ "$check" = 1 ] && command -v buildah >/dev/null && [ -z "${BUILDAH_ROOT:-}" ]; then
  # A throwaway store: the check leaves nothing behind.
  BUILDAH_ROOT=$(mktemp -d)
  BUILDAH_FLAGS=${BUILDAH_FLAGS:---storage-driver vfs}
  trap 'rm -rf "$BUILDAH_ROOT"' EXIT
fi
if command -v buildah >/dev/null; then
  builder=(buildah ${BUILDAH_ROOT:+--root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/run"} ${BUILDAH_FLAGS:-})
elif docker info >/dev/null 2>&1; then
  builder=(docker)
elif [ "$check" = 1 ]; then
  echo "build-images: neither buildah nor a Docker engine here; image build skipped (apt-get install buildah)"
  exit 0
else
  echo "build-images: needs buildah (apt-get install buildah) or a Docker engine" >&2
  exit 1
fi

echo "build-images: static eft binary"
CGO_ENABLED=0 go build -trimpath -ldflags=-s -o bin/eft ./services/eft

echo "build-images: $image with ${builder[0]}"
"${builder[@]}" build -f infra/Dockerfile -t "$image" .
if [ "$cuda" = 1 ]; then
  echo "build-images: $cuda_image on $cuda_base"
  "${builder[@]}" build -f infra/Dockerfile --build-arg BASE="$cuda_base" -t "$cuda_image" .
fi

if [ "$check" = 1 ]; then
  if [ "${builder[0]}" = buildah ]; then
    got=$("${builder[@]}" inspect --type image --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}' "$image")
  else
    got=$(docker image inspect --format '{{.Config.User}} {{.Config.Entrypoint}}' "$image")
  fi
  echo "build-images: $image runs as: $got"
  case $got in
    '65532:65532 [/eft]') ;;
    *) echo "build-images: want user 65532:65532 and entrypoint [/eft]" >&2; exit 1 ;;
  esac
  if [ "${builder[0]}" = buildah ] && [ "$(id -u)" = 0 ]; then
    # Run the image's binary from its mounted file system: it must be static
    # (scratch has no libc), and the state directories must be the user's.
    ctr=$("${builder[@]}" from "$image")
    mnt=$("${builder[@]}" mount "$ctr")
    "$mnt/eft" version
    owners=$(stat -c '%u:%g' "$mnt/data" "$mnt/tmp" "$mnt/work" | sort -u)
    "${builder[@]}" umount "$ctr" >/dev/null
    "${builder[@]}" rm "$ctr" >/dev/null
    [ "$owners" = 65532:65532 ] || { echo "build-images: /data, /tmp, /work owned by $owners" >&2; exit 1; }
  fi
  "${builder[@]}" rmi "$image" >/dev/null
  echo "build-images: ok"
fi
