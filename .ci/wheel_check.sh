#!/usr/bin/env bash
# The package as a user installs it: build the wheel, install it into a fresh venv (no checkout on
# the path, no editable finder), and from another folder run `mlc targets`, the README's optimize
# command and a short HTTP profile. An editable install hides what a wheel leaves out (the
# hardware targets once; the profiler's engine, an extra, once).
#
# Usage: bash .ci/wheel_check.sh   (from anywhere; needs python3 with venv, and the example model:
# python examples/train_example.py)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "-- build the wheel"
python3 -m venv "$work/build-venv"
"$work/build-venv/bin/pip" wheel -q "$root" --no-deps -w "$work/dist"
wheel="$(ls "$work"/dist/mlc-*.whl)"
echo "built $(basename "$wheel")"

echo "-- install it into a fresh venv"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"

echo "-- use it from another folder"
mkdir "$work/elsewhere"
cd "$work/elsewhere"
export MLC_HOME="$work/elsewhere/.mlc"
unset MLC_PROFILES
mlc="$work/venv/bin/mlc"
targets="$("$mlc" targets --json)"
echo "$targets" | "$work/venv/bin/python" -c '
import json, sys
names = {t["name"] for t in json.load(sys.stdin)}
missing = {"cpu-2", "cpu-8", "gpu-h100"} - names
sys.exit(f"mlc targets from the wheel lacks {sorted(missing)}" if missing else 0)'
echo "mlc targets: the shipped targets are there"
"$mlc" optimize "$root/examples/churn_forest.joblib" --name churn --data "$root/examples/churn_forest.sample.npy"
# A short HTTP profile: `mlc serve` from the wheel, measured as it is configured by the wheel's
# profiler and locust (one configuration; the whole search, a server per layout, takes minutes).
# A loose SLO: this checks that the pieces run as installed, not this machine's latency.
"$mlc" serve churn --port 0 --json > serve.json 2> serve.log &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1500); do  # up to 5 minutes for its one line, printed once it listens
    [ -s serve.json ] && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.2
done
[ -s serve.json ] || { echo "mlc serve from the wheel did not start:"; cat serve.log; exit 1; }
url="$("$work/venv/bin/python" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["url"])' serve.json)"
"$mlc" profile churn --mode http --url "$url" --duration 1s --slo-p99-ms 1000 --no-record
kill "$serve_pid" && wait "$serve_pid" || true
echo "-- the wheel works as installed"
