#!/usr/bin/env bash
# Validates compose.yaml with `docker compose config` (no Docker engine
# needed) through the Go test TestComposeConfig. When the docker CLI here has
# no compose plugin, the plugin is built from the Go module proxy (a few
# minutes the first time) into bin/tools/cli-plugins/docker-compose.
set -euo pipefail
cd "$(dirname "$0")/.."

# The newest docker/compose that builds with this repository's Go (1.26.8).
compose_module=github.com/docker/compose/v5
compose_version=${COMPOSE_VERSION:-v5.6.0}
plugin=bin/tools/cli-plugins/docker-compose

if [ -z "${EFT_COMPOSE:-}" ] && ! docker compose version >/dev/null 2>&1; then
  if [ ! -x "$plugin" ]; then
    echo "compose-check: building the docker compose plugin $compose_module@$compose_version"
    # go install refuses modules with exclude directives: build inside the
    # downloaded module, where they apply.
    dir=$(go mod download -json "$compose_module@$compose_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -n "$dir" ] || { echo "compose-check: could not download $compose_module@$compose_version" >&2; exit 1; }
    mkdir -p "$(dirname "$plugin")"
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$OLDPWD/$plugin" ./cmd)
  fi
  export EFT_COMPOSE=$PWD/$plugin
fi
EFT_REQUIRE_COMPOSE=1 CGO_ENABLED=0 go test -count=1 -run 'TestCompose' -v ./services/cluster/
