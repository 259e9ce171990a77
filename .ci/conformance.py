"""Runs the public SCIM conformance checker scim2-tester against a running scimd.

Usage: SCIMD_TOKEN=... python conformance.py BASE_URL [--report FILE]

scim2-tester is a library (its CLI, scim2-cli, wraps the same `check_server` call and fails
on any status but SUCCESS, skips included, and prints no machine-readable result), so we
call `check_server` directly and decide ourselves what counts:

- pass: SUCCESS, COMPLIANT, ACCEPTABLE (RFC MUSTs met; SHOULDs followed; MAYs used sensibly).
- fail: ERROR, CRITICAL (a MUST broken, or a security problem) and DEVIATION (a SHOULD not
  followed): scimd aims at the RFC's recommendations too, so a deviation must be fixed or
  listed in ACCEPTED below with the reason it is right.
- skipped: accepted only when the checker says why and the reason is one of SKIP_REASONS
  (the server announced or answered that it does not offer the feature, or the schema has
  nothing of that kind to test). Any other skip is a failure, so coverage cannot shrink
  silently. We exclude no tags.

Exit status: 0 when nothing failed, 1 otherwise, 2 when the checker could not run.
"""

import argparse
import json
import os
import re
import sys
from collections import Counter
from importlib.metadata import version

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status
from scim2_tester import check_server

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}
FAILING = {Status.ERROR, Status.CRITICAL, Status.DEVIATION}

# Skips that are not failures, matched against the checker's stated reason.
SKIP_REASONS = [
    # ServiceProviderConfig says the feature is off, or the server answered 501 for it
    # (e.g. POST /.search across resource types when a server does not offer it).
    re.compile(r"not supported by (the )?server"),
    # The resource's schema has no attribute of the kind the check needs.
    re.compile(r"^No (addable|removable|replaceable|suitable) attributes"),
]

# Non-passing results we accept, as (check title, resource type or None, reason substring,
# why it is right). Empty: every failure the checker found was fixed in scimd.
ACCEPTED: list[tuple[str, str | None, str, str]] = []

# Each resource type scimd serves must have been exercised, so a discovery regression that
# makes the checker stop early cannot pass as "zero failures".
EXPECTED_RESOURCE_TYPES = {"User", "Group"}


def verdict(result) -> str:
    if result.status in PASSING:
        return "pass"
    for title, rtype, reason, _why in ACCEPTED:
        if (
            result.title == title
            and rtype in (None, result.resource_type)
            and reason in (result.reason or "")
        ):
            return "accepted"
    if result.status == Status.SKIPPED:
        reason = result.reason or ""
        return "skip" if any(p.search(reason) for p in SKIP_REASONS) else "fail"
    return "fail"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2")
    parser.add_argument("--report", help="write every result as JSON to this file")
    args = parser.parse_args()
    token = os.environ["SCIMD_TOKEN"]

    print(
        f"scim2-tester {version('scim2-tester')} (scim2-client {version('scim2-client')}, "
        f"scim2-models {version('scim2-models')}) against {args.base_url}"
    )
    http = httpx2.Client(
        base_url=args.base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    # The client checks status codes and Content-Type of every response (its defaults).
    client = SyncSCIMClient(http)
    try:
        results = check_server(client)
    except Exception as exc:  # the checker itself broke: not a verdict on scimd
        print(f"scim2-tester could not run: {exc!r}", file=sys.stderr)
        return 2

    verdicts = [verdict(r) for r in results]
    for r, v in zip(results, verdicts):
        if v == "pass":
            continue
        where = f" [{r.resource_type}]" if r.resource_type else ""
        print(f"{v.upper():8} {r.status.name:9} {r.title}{where}")
        if r.reason:
            print("         " + r.reason.replace("\n", "\n         "))
        if v == "fail" and r.data is not None:
            print(f"         data: {r.data!r}"[:2000])

    by_status = Counter(r.status.name for r in results)
    by_verdict = Counter(verdicts)
    by_type = Counter(r.resource_type or "-" for r in results)
    print(
        f"\n{len(results)} checks: "
        + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        + " | per resource type: "
        + ", ".join(f"{t} {n}" for t, n in sorted(by_type.items()))
    )
    missing = EXPECTED_RESOURCE_TYPES - {r.resource_type for r in results}
    if missing:
        print(f"not exercised at all: {', '.join(sorted(missing))}")

    if args.report:
        with open(args.report, "w") as f:
            json.dump(
                [
                    {
                        "title": r.title,
                        "resource_type": r.resource_type,
                        "status": r.status.name,
                        "verdict": v,
                        "reason": r.reason,
                        "tags": sorted(r.tags),
                    }
                    for r, v in zip(results, verdicts)
                ],
                f,
                indent=1,
            )

    failed = by_verdict["fail"]
    if failed or missing:
        print(f"conformance: FAILED ({failed} failing checks)")
        return 1
    print(
        f"conformance: OK ({by_verdict['pass']} passed, {by_verdict['skip']} skipped as "
        f"unsupported or not applicable, {by_verdict['accepted']} accepted deviations)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
