#!/usr/bin/env bash
# The apps API against independent checkers: the OpenAPI 3.1 document must validate, and
# Schemathesis drives the live /api/v1 of the real binary (with data and events in it):
# no 5xx, and every status, content type, header and body must match the document.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-apps
target_dir=${CARGO_TARGET_DIR:-target}

echo "== apps API: installing the pinned checkers (.ci/apps-requirements.txt)"
if [ ! -x "$venv/bin/python" ]; then
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
"${pip[@]}" install --quiet --disable-pip-version-check -r .ci/apps-requirements.txt

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
token=$("$scimd" --db "$db" token create --name apps 2>/dev/null)
key=$("$scimd" --db "$db" apikey create --name schemathesis 2>/dev/null | tail -n 1)
printf 'email,role\nada@example.com,admin\nbob@example.com,\n' >"$tmp/people.csv"
"$scimd" --db "$db" members import "$tmp/people.csv" >/dev/null

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
    sleep 0.1
done
[ -n "$addr" ] || { echo "apps API: scimd did not become healthy" >&2; cat "$tmp/serve.err" >&2; exit 1; }

# Directory data and events: an IdP pushes users and a group, and deactivates one.
"$venv/bin/python" - "$addr" "$token" <<'PY'
import json, sys, urllib.request
addr, token = sys.argv[1], sys.argv[2]
def call(method, path, body):
    req = urllib.request.Request(f"http://{addr}/scim/v2{path}", method=method,
        data=json.dumps(body).encode(), headers={"Authorization": f"Bearer {token}",
        "Content-Type": "application/scim+json"})
    return json.load(urllib.request.urlopen(req))
ids = [call("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": f"user{i}@example.com", "externalId": f"ext-{i}"})["id"] for i in range(5)]
call("POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
     "displayName": "scimd-role-admin", "members": [{"value": i} for i in ids[:3]]})
call("PATCH", f"/Users/{ids[4]}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
     "Operations": [{"op": "replace", "path": "active", "value": False}]})
PY

echo "== apps API: validating the OpenAPI document"
"$venv/bin/python" -c "import json, sys, urllib.request
from openapi_spec_validator import validate
validate(json.load(urllib.request.urlopen('http://$addr/api/v1/openapi.json')))
print('openapi.json: valid OpenAPI 3.1')"

echo "== apps API: Schemathesis against http://$addr/api/v1"
SCHEMATHESIS_HOOKS=apps_hooks PYTHONPATH=.ci "$venv/bin/schemathesis" run \
    "http://$addr/api/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples 50 --request-timeout 20 --seed 1 --no-color
