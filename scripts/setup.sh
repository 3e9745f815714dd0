#!/usr/bin/env bash
# Installs what a fresh Debian machine with Rust lacks. Idempotent and quick
# when everything is there already.
set -euo pipefail

need_apt=()
command -v sccache >/dev/null 2>&1 || need_apt+=(sccache)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
[ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang*.so >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]} (apt)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY -c "import moto.server" >/dev/null 2>&1 || ! command -v moto_server >/dev/null 2>&1; then
    echo "setup: installing moto[server] (pip)"
    $PY -m pip install -q 'moto[server]'
fi
if ! $PY -c "import confluent_kafka.schema_registry" >/dev/null 2>&1; then
    echo "setup: installing confluent-kafka (pip)"
    $PY -m pip install -q 'confluent-kafka[schemaregistry]' || echo "setup: confluent-kafka unavailable; its registry test will say so"
fi
