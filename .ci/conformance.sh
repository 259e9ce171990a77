#!/usr/bin/env bash
# Conformance: the public SCIM checker scim2-tester (PyPI, python-scim project) against the
# real scimd binary on a fresh database. Fails if any check fails; see .ci/conformance.py
# for what counts as a failure, a tolerated skip, or an accepted deviation.
#
# Needs python3 (3.10+) with pip, the Rust toolchain, and network access to PyPI and
# crates.io only. The venv lives in .venv (git-ignored) and is reused when present; the
# checker's results are written to target/conformance/report.json.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
target_dir=${CARGO_TARGET_DIR:-target}
report_dir=$target_dir/conformance

echo "== conformance: installing the pinned checker (.ci/conformance-requirements.txt)"
if [ ! -x "$venv/bin/python" ]; then
    # Debian ships ensurepip separately (python3-venv); without it, make the venv bare and
    # let the system pip install into it (pip >= 22.3 has --python).
    python3 -m venv "$venv" 2>/dev/null || {
        rm -rf "$venv"
        python3 -m venv --without-pip "$venv"
    }
fi
if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    pip=("$venv/bin/python" -m pip)
else
    pip=(python3 -m pip --python "$venv/bin/python")
fi
"${pip[@]}" install --quiet --disable-pip-version-check -r .ci/conformance-requirements.txt

echo "== conformance: building scimd"
cargo build --quiet --bin scimd
scimd=$target_dir/debug/scimd

tmp=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

db=$tmp/scimd.db
token=$("$scimd" --db "$db" token create --name conformance 2>"$tmp/token.err") || {
    cat "$tmp/token.err" >&2
    exit 1
}

# Port 0: the kernel picks a free port and scimd prints the address it bound, so there is
# no window in which another process could take a port we chose.
SCIMD_LOG=warn "$scimd" --db "$db" serve --listen 127.0.0.1:0 \
    >"$tmp/serve.out" 2>"$tmp/serve.err" </dev/null &
server_pid=$!

addr=
for _ in $(seq 1 100); do
    addr=$(sed -n 's|^scimd .* listening on http://||p' "$tmp/serve.out")
    if [ -n "$addr" ] && "$scimd" healthcheck --listen "$addr" >/dev/null 2>&1; then
        break
    fi
    addr=
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "conformance: scimd did not become healthy" >&2
    cat "$tmp/serve.out" "$tmp/serve.err" >&2
    exit 1
fi
base_url=http://$addr/scim/v2

echo "== conformance: scim2-tester against $base_url"
mkdir -p "$report_dir"
status=0
SCIMD_TOKEN=$token "$venv/bin/python" .ci/conformance.py "$base_url" \
    --report "$report_dir/report.json" || status=$?

# A clean drain on SIGTERM is part of the contract too.
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=
if [ "$server_status" -ne 0 ]; then
    echo "conformance: scimd exited with status $server_status after SIGTERM" >&2
    status=1
fi
if grep -q -E ' (ERROR|WARN) ' "$tmp/serve.err"; then
    echo "-- scimd logged warnings or errors during the run:"
    grep -E ' (ERROR|WARN) ' "$tmp/serve.err" | head -n 50
fi
exit "$status"
