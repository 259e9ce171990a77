#!/usr/bin/env python3
"""Verify an exported scimd audit log (JSON lines from `scimd audit` or the UI's export)
without scimd: recompute every entry's hash and check that each follows the one before it
in its chain (one chain per tenant). Prints each chain's newest hash; exits 1 at the first
entry that was changed, removed or inserted.

    python3 verify-audit.py audit.jsonl
"""
import hashlib
import json
import sys

GENESIS = "0" * 64


def content(e):
    fields = ["id", "tenantId", "at", "actor", "action", "target", "outcome", "status",
              "requestId", "detail"]
    return json.dumps([e.get(f) for f in fields], separators=(",", ":"), ensure_ascii=False)


def main(path):
    heads = {}  # tenantId -> (id, hash, prevHash)
    count = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            e = json.loads(line)
            prev, own = e.get("prevHash"), e.get("hash")
            if prev is None or own is None:
                sys.exit(f"entry {e['id']} has no hash: it was inserted or rewritten outside scimd")
            digest = hashlib.sha256((prev + "\n" + content(e)).encode("utf-8")).hexdigest()
            if digest != own:
                sys.exit(f"entry {e['id']} was changed after it was written")
            head = heads.get(e.get("tenantId"))
            if head is not None and head[1] != prev:
                if head[2] == prev:
                    sys.exit(f"entry {head[0]} was inserted into the log")
                sys.exit(f"entry {e['id']} does not follow entry {head[0]}: an entry between "
                         f"them was removed, or entry {head[0]} was rewritten with a new hash")
            heads[e.get("tenantId")] = (e["id"], own, prev)
            count += 1
    for tenant, (last, own, _) in sorted(heads.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0)):
        chain = "outside tenants" if tenant is None else f"tenant {tenant}"
        print(f"{chain}: newest {last} with hash {own}")
    print(f"ok: {count} entries verified")


if __name__ == "__main__":
    main(sys.argv[1])
