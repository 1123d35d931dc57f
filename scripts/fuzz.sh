#!/usr/bin/env bash
# Builds the fuzz crate and runs its targets for a set time each, then prints executions and
# crashes per target. Usage:
#
#   bash scripts/fuzz.sh [-j JOBS] [SECONDS] [TARGET...]
#
# SECONDS (default 60) is libFuzzer's -max_total_time for each target; no TARGET means all of
# them (fuzz/fuzz_targets/*.rs). -j 2 (or FUZZ_JOBS=2) runs two targets at a time (one core
# each). Exits non-zero if any target crashed (or failed to run).
#
# Stable Rust: the build passes cargo-fuzz's coverage flags itself (sanitizer coverage is a
# stable `-C passes`/`-C llvm-args` matter; only `-Zsanitizer=address`, which safe Rust does not
# need, is nightly), so neither cargo-fuzz nor a nightly toolchain is needed. Built for the host
# triple given explicitly, so build scripts and proc macros are not instrumented.
#
# Per target: corpus fuzz/corpus/<target>/ (kept between runs; the payload and request-path
# targets are seeded from events/*/*.json), crash inputs fuzz/artifacts/<target>/, the log
# $FUZZ_TARGET_DIR/fuzz-logs/<target>.log. Replay a crash with
# `fuzz/target/<triple>/release/<target> fuzz/artifacts/<target>/<file>`.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs="${FUZZ_JOBS:-1}"
if [[ "${1:-}" == "-j" ]]; then
    jobs="$2"
    shift 2
fi
seconds="${1:-60}"
[[ $# -gt 0 ]] && shift
if ! [[ "$seconds" =~ ^[0-9]+$ && "$jobs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [-j JOBS] [SECONDS] [TARGET...]" >&2
    exit 2
fi

all=()
for f in fuzz/fuzz_targets/*.rs; do
    all+=("$(basename "$f" .rs)")
done
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")
for t in "${targets[@]}"; do
    if [[ ! -f "fuzz/fuzz_targets/$t.rs" ]]; then
        echo "unknown target $t (targets: ${all[*]})" >&2
        exit 2
    fi
done

target_dir="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
# cargo-fuzz's flags (its default build, minus the address sanitizer).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Coverflow-checks"
echo "== building the fuzz crate ($triple, $target_dir)"
build_started=$SECONDS
cargo build --release --locked --manifest-path fuzz/Cargo.toml --features libfuzzer \
    --target "$triple" --target-dir "$target_dir" --bins
echo "   built in $((SECONDS - build_started)) s"
bin_dir="$target_dir/$triple/release"
log_dir="$target_dir/fuzz-logs"
mkdir -p "$log_dir"

# Seeds (fuzz/tests/corpus.rs replays the same ones in `make test`: keep the two in step): a
# sample body as is (models), behind a message-id flag byte (users model), or behind
# the request-path prefix: the receiver's registry index, flags (bit 1 genuine), skew 0, source
# 192.0.2.1, no extra header, default message id (see fuzz/src/request_path.rs).
# The registry's receivers, in its order (the index is the request path's first byte).
mapfile -t receivers < <(cargo run -q -p hookline-cli -- receivers --names)
seed() {
    local target=$1 name=$2 prefix=$3 file=$4
    local out="fuzz/corpus/$target/seed-$name"
    [[ -e "$out" ]] || { printf "$prefix"; cat "$file"; } > "$out"
}
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    case "$t" in
    model_stripe)
        for f in events/payment-events/*.json; do seed "$t" "$(basename "$f")" '' "$f"; done ;;
    model_users)
        for f in events/user-events/*.json; do seed "$t" "$(basename "$f")" '\001' "$f"; done ;;
    request_path)
        i=0
        for fn in "${receivers[@]}"; do
            for f in "events/$fn"/*.json; do
                seed "$t" "$fn-$(basename "$f")" "\\$(printf '%03o' "$i")\\002\\000\\001\\000\\000" "$f"
            done
            i=$((i + 1))
        done ;;
    esac
done

run_one() {
    local t=$1 dict=()
    case "$t" in
    model_* | request_path) dict=(-dict=fuzz/dict/payloads.dict) ;;
    esac
    local started=$SECONDS rc=0
    touch "fuzz/artifacts/$t/.run-start"
    "$bin_dir/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=1024 -artifact_prefix="fuzz/artifacts/$t/" "${dict[@]}" \
        "fuzz/corpus/$t" > "$log_dir/$t.log" 2>&1 || rc=$?
    echo "$((SECONDS - started)) $rc" > "$log_dir/$t.result"
}

echo "== fuzzing ${#targets[@]} target(s) for ${seconds} s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
    if ((running >= jobs)); then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=0
printf '\n%-18s %8s %14s %10s %8s %8s\n' target seconds executions exec/s corpus crashes
for t in "${targets[@]}"; do
    read -r took rc < "$log_dir/$t.result"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_dir/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log_dir/$t.log" | tail -1)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    crashes=$(find "fuzz/artifacts/$t" -type f ! -name .run-start -newer "fuzz/artifacts/$t/.run-start" | wc -l)
    printf '%-18s %8s %14s %10s %8s %8s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes"
    if ((crashes > 0 || rc != 0)); then
        failed=1
        echo "   $t: exit $rc, log $log_dir/$t.log" >&2
        find "fuzz/artifacts/$t" -type f ! -name .run-start -newer "fuzz/artifacts/$t/.run-start" \
            -exec echo "   crash input: {}" \; >&2
    fi
done
exit "$failed"
