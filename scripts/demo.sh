#!/usr/bin/env bash
# The README's main command. On a fresh Debian machine with Rust: builds the
# toolkit and runs the join job end to end on the small workload:
#   generate -> run with checkpoints -> crash part way -> rerun resumes from
#   the last checkpoint -> finish -> validate against the batch join (EQUAL)
#   -> evolve the impression schema (v2 accepted, v3 refused with its reason)
#   -> `savepoint ls` / `savepoint inspect` of the checkpoints.
# Checkpoints go to ./demo-out/checkpoints, or to $DEMO_CHECKPOINTS
# (e.g. s3://bucket/prefix, with the AWS_* variables set) when given.
# Idempotent: ./demo-out is recreated on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n\033[1m==== %s ====\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
# Prints one field of the run summary (the JSON last line of `run`).
field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])[sys.argv[1]])' "$1"; }
# crash_part_way CKPT CMD...: runs CMD until it crashes (exit 3) right after
# its first checkpoint is committed and before the job publishes that
# checkpoint's output: a crash part way with a checkpoint to resume from,
# whatever the speed of the machine and the store (checkpoints complete
# asynchronously, and on this small input the job outruns them, so a crash
# after a number of events may come before any checkpoint).
crash_part_way() {
    local ckpt=$1 code
    shift
    echo "\$ ${*} --stop-after-checkpoints 1"
    set +e
    "$@" --stop-after-checkpoints 1
    code=$?
    set -e
    [ "$code" -eq 3 ] || die "expected the simulated crash (exit 3), got exit $code"
    "$SP" ls "$ckpt" | grep -qw complete || die "no checkpoint completed before the crash"
}

section "1. setup and build (release; RocksDB's C++ is cached by sccache)"
scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh
cargo build --release -p join-operator -p savepoint-cli
BIN="$CARGO_TARGET_DIR/release"
SJ="$BIN/stream-join"
SP="$BIN/savepoint"

DEMO=./demo-out
rm -rf "$DEMO"
mkdir -p "$DEMO"
if [ -n "${DEMO_CHECKPOINTS:-}" ]; then
    # A fresh prefix per demo run: an object store is not wiped by rm -rf.
    CKPT="${DEMO_CHECKPOINTS%/}/demo-$(date +%Y%m%d-%H%M%S)-$$"
    SCHEMA_CKPT="$CKPT-schema"
else
    CKPT="$DEMO/checkpoints"
    SCHEMA_CKPT="$DEMO/schema/checkpoints"
fi
IN="$DEMO/input"
OUT="$DEMO/output"
INTERVAL=20000

section "2. generate the small workload (seed 7) into $IN"
"$SJ" gen --size small --seed 7 --out "$IN"

RUN=("$SJ" run --impressions "$IN/impressions.csv" --plays "$IN/plays.csv"
    --output "$OUT" --checkpoints "$CKPT" --checkpoint-interval-events "$INTERVAL")

section "3. run the join with a checkpoint every $INTERVAL events to $CKPT; it crashes part way"
crash_part_way "$CKPT" "${RUN[@]}"
echo "crashed (exit 3). Committed so far: $(find "$OUT" -maxdepth 1 -name '*.csv' | wc -l) part file(s) (a completed checkpoint whose files were not yet published is published on restore);" \
    "uncommitted work in $OUT/.inprogress is discarded on restore."
echo "checkpoints written before the crash:"
"$SP" ls "$CKPT"

section "4. rerun the same command: it resumes from the last complete checkpoint"
echo "\$ ${RUN[*]}"
summary=$("${RUN[@]}")
echo "$summary"
restored=$(echo "$summary" | field restored_from)
before=$(echo "$summary" | field events_before_restore)
[ "$restored" != "None" ] || die "the rerun did not resume from a checkpoint"
echo "resumed from checkpoint $restored, skipping the $before events it had already processed; finished."

section "5. validate: committed output vs the batch join of the same input"
"$SJ" validate --impressions "$IN/impressions.csv" --plays "$IN/plays.csv" --output "$OUT" \
    | tee "$DEMO/validation.txt"
grep -q '^validation: EQUAL' "$DEMO/validation.txt" || die "validation failed"

section "6. schema evolution: a second job, impressions v1 -> v2 (field with a default) -> v3 refused"
SD="$DEMO/schema"
mkdir -p "$SD"
# v1 is the job's built-in schema (join-operator/src/operator/schemas.rs).
python3 - "$SD" <<'EOF'
import json, re, sys
src = open("join-operator/src/operator/schemas.rs").read()
v1 = json.loads(re.search(r'IMPRESSION_V1: &str = r#"(.*?)"#', src, re.S).group(1))
def variant(extra):
    s = json.loads(json.dumps(v1))
    s["fields"].append(extra)
    return json.dumps(s, indent=1)
out = sys.argv[1]
v2_field = {"name": "page", "type": "string", "default": "home"}
v3_field = {"name": "score", "type": "double"}
open(f"{out}/v2.avsc", "w").write(variant(v2_field))
open(f"{out}/v3.avsc", "w").write(variant(v3_field))
print(f"v2.avsc = v1 + {json.dumps(v2_field)}: compatible, old data reads with the default")
print(f"v3.avsc = v1 + {json.dumps(v3_field)}: incompatible, old data has no value for it")
EOF
SRUN=("$SJ" run --impressions "$IN/impressions.csv" --plays "$IN/plays.csv"
    --output "$SD/output" --checkpoints "$SCHEMA_CKPT" --checkpoint-interval-events "$INTERVAL"
    --registry "$SD/registry")
echo "-- run with v1 (registered in the folder registry $SD/registry), crash part way"
crash_part_way "$SCHEMA_CKPT" "${SRUN[@]}"
echo "-- resume from the v1 checkpoint with v2: buffered v1 impressions are read through v2"
summary=$("${SRUN[@]}" --impression-schema "$SD/v2.avsc")
echo "$summary"
[ "$(echo "$summary" | field restored_from)" != "None" ] || die "the v2 run did not resume"
"$SJ" validate --impressions "$IN/impressions.csv" --plays "$IN/plays.csv" --output "$SD/output" \
    | tee "$SD/validation.txt"
grep -q '^validation: EQUAL' "$SD/validation.txt" || die "validation after the v2 resume failed"
echo "-- versions of impressions-value in the registry:"
"$SP" schema list --registry "$SD/registry" --subject impressions-value
echo "-- v3 (a new field without a default) must be refused at start:"
set +e
"${SRUN[@]}" --impression-schema "$SD/v3.avsc" 2>"$SD/v3.err" >/dev/null
code=$?
set -e
[ "$code" -ne 0 ] || die "v3 was accepted"
echo "refused (exit $code): $(cat "$SD/v3.err")"

section "7. savepoint ls / inspect of the job's checkpoints ($CKPT)"
echo "\$ savepoint ls $CKPT"
"$SP" ls "$CKPT"
echo "\$ savepoint inspect $CKPT"
"$SP" inspect "$CKPT"

section "done"
echo "validation EQUAL after a crash and a restore; schema v2 accepted, v3 refused."
echo "input: $IN, output: $OUT ($(find "$OUT" -maxdepth 1 -name '*.csv' | wc -l) committed part files), checkpoints: $CKPT"
