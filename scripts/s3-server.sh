#!/usr/bin/env bash
# Starts moto's S3-compatible server on a free 127.0.0.1 port; prints the
# endpoint URL. Usage: scripts/s3-server.sh start|stop
set -euo pipefail
STATE=${STREAMSTATE_S3_STATE:-/tmp/streamstate-s3}
case "${1:-}" in
start)
    mkdir -p "$STATE"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    nohup moto_server -H 127.0.0.1 -p "$port" >"$STATE/moto.log" 2>&1 &
    echo $! >"$STATE/pid"
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/')" >/dev/null 2>&1; then
            echo "http://127.0.0.1:$port"
            exit 0
        fi
        sleep 0.2
    done
    echo "moto_server did not start; log:" >&2
    cat "$STATE/moto.log" >&2
    exit 1
    ;;
stop)
    if [ -f "$STATE/pid" ]; then
        kill "$(cat "$STATE/pid")" 2>/dev/null || true
        rm -f "$STATE/pid"
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
