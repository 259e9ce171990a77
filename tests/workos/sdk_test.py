#!/usr/bin/env python3
"""scimd <-> official WorkOS Python SDK (workos 10.x) compatibility check.

Run by the Rust integration test AFTER it has driven SCIM traffic into scimd.
Uses ONLY the public SDK API, exactly as an app written against WorkOS would.

Environment (required unless marked optional):
  SCIMD_URL          base URL of scimd's WorkOS-compatible API, e.g. http://127.0.0.1:8080
                     (no path prefix: the Node SDK cannot use one, so scimd serves /directory_users etc. at root)
  WORKOS_API_KEY     API key scimd accepts as `Authorization: Bearer <key>`
  DIRECTORY_ID       WorkOS directory id of the scimd tenant under test
  EXPECT_JSON        path of a JSON file written by the Rust test:
      {
        "organization_id": "org_..."            (optional; checked on users/groups/directory)
        "total_users": 301,                     (exact number list_users(directory) must return)
        "users": [ {"email": "a@x", "state": "active"|"inactive",
                    "role": "admin"  (optional: role.slug and roles[].slug must contain it)} ],
                                                (each must be listed exactly once with that state)
        "deleted_directories": ["directory_x"], (optional: a dsync.deleted event exists for each, state deleting)
        "deleted_emails": ["gone@x"],           (absent from list_users; a dsync.user.deleted event exists;
                                                 get_user(<its id>) -> NotFoundError unless "deleted_get_404": false)
        "groups": [ {"name": "Engineering", "members": ["a@x", "b@x"]} ],
                                                (group listed once; list_groups(user=member) contains it;
                                                 a dsync.group.user_added event exists per (group, member))
        "deleted_get_404": true                 (optional, default true)
        "check_event_order": true               (optional, default true: /events default order is oldest first)
      }
  WEBHOOK_BODY_FILE  file holding the raw body of one webhook POST scimd sent (byte-exact)
  WEBHOOK_SIGNATURE  the WorkOS-Signature header value of that POST ("t=<ms>, v1=<hex>")
  WEBHOOK_SECRET     the webhook endpoint secret configured in scimd
  WEBHOOK_TOLERANCE  optional, seconds (default 180, the SDK default). Raise it if the webhook was
                     captured long before this script runs.
  WEBHOOK_OPTIONAL   optional; "1" skips the webhook checks when WEBHOOK_BODY_FILE is unset.
  MAX_ITEMS          optional; abort auto-paging after this many items (default max(10000, 20*total_users))
                     so a server whose cursor never ends (after:"" or looping) fails instead of hanging.

Exit status 0 and a final "OK python-sdk ..." line on success; non-zero with "FAIL: ..." lines otherwise.
"""
import json
import os
import sys
import time

import workos
from workos import WorkOSClient
from workos.events.models import EventSchemaUnknown

DSYNC_EVENTS = [
    "dsync.activated", "dsync.deleted",
    "dsync.group.created", "dsync.group.deleted", "dsync.group.updated",
    "dsync.group.user_added", "dsync.group.user_removed",
    "dsync.user.created", "dsync.user.deleted", "dsync.user.updated",
]

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL: " + msg, file=sys.stderr, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def env(name):
    v = os.environ.get(name)
    if not v:
        print("FAIL: missing env var %s (see header of %s)" % (name, __file__), file=sys.stderr)
        sys.exit(2)
    return v


MAX_ITEMS = 10000  # raised in main() to 20 x total_users; env MAX_ITEMS overrides


def collect(page, what):
    """list(page.auto_paging_iter()) with a guard: a server that never returns after=null
    (e.g. after="" or a cursor that loops) would make the SDK page forever."""
    out = []
    for item in page.auto_paging_iter():
        out.append(item)
        if len(out) > MAX_ITEMS:
            fail("%s: auto_paging_iter yielded more than %d items - pagination never ends "
                 "(list_metadata.after must be null on the last page, never \"\")" % (what, MAX_ITEMS))
            break
    return out


def enum_str(v):
    return getattr(v, "value", v)


def main():
    url = env("SCIMD_URL")
    key = env("WORKOS_API_KEY")
    directory_id = env("DIRECTORY_ID")
    with open(env("EXPECT_JSON")) as f:
        expect = json.load(f)
    global MAX_ITEMS
    MAX_ITEMS = int(os.environ.get("MAX_ITEMS", max(10000, 20 * int(expect.get("total_users", 0)))))
    org_id = expect.get("organization_id")
    exp_users = {u["email"].lower(): u for u in expect.get("users", [])}
    deleted = [e.lower() for e in expect.get("deleted_emails", [])]
    exp_groups = expect.get("groups", [])

    client = WorkOSClient(api_key=key, base_url=url, max_retries=0)
    ds = client.directory_sync
    t_start = time.time()

    # ---- directories --------------------------------------------------------
    d = ds.get_directory(directory_id)
    check(d.id == directory_id, "get_directory returned id %r" % d.id)
    if org_id:
        check(d.organization_id == org_id, "directory.organization_id %r != %r" % (d.organization_id, org_id))
    dirs = collect(ds.list_directories(), "ds.list_directories")
    check(directory_id in [x.id for x in dirs], "list_directories() does not contain %s" % directory_id)
    if org_id:
        dirs = collect(ds.list_directories(organization_id=org_id), "ds.list_directories")
        check([x.id for x in dirs] == [directory_id],
              "list_directories(organization_id) -> %r, want [%s]" % ([x.id for x in dirs], directory_id))
    # search: a piece of the name, in any case; a domain no directory has finds none.
    piece = d.name[1:4].upper() if len(d.name) >= 4 else d.name.upper()
    dirs = collect(ds.list_directories(search=piece), "ds.list_directories")
    check(directory_id in [x.id for x in dirs], "list_directories(search=%r) lacks %s" % (piece, directory_id))
    dirs = collect(ds.list_directories(search="no such directory name"), "ds.list_directories")
    check(dirs == [], "list_directories(search=<nothing>) -> %r" % [x.id for x in dirs])
    dirs = collect(ds.list_directories(domain="example.invalid"), "ds.list_directories")
    check(dirs == [], "list_directories(domain=<none>) -> %r" % [x.id for x in dirs])

    # ---- users: auto-paging, default order desc, default limit 10 -------------
    users = collect(ds.list_users(directory=directory_id), "ds.list_users")
    ids = [u.id for u in users]
    emails = [(u.email or "").lower() for u in users]
    check(len(ids) == len(set(ids)), "list_users auto_paging_iter returned duplicate ids: %d items, %d unique"
          % (len(ids), len(set(ids))))
    dup_emails = sorted({e for e in emails if emails.count(e) > 1}) if len(emails) != len(set(emails)) else []
    check(not dup_emails, "duplicate emails in list_users: %s" % dup_emails[:5])
    if "total_users" in expect:
        check(len(users) == expect["total_users"],
              "list_users returned %d users, expected %d" % (len(users), expect["total_users"]))
    by_email = {(u.email or "").lower(): u for u in users}
    missing = [e for e in exp_users if e not in by_email]
    check(not missing, "%d expected users missing from list_users, e.g. %s" % (len(missing), missing[:5]))
    for e, want in exp_users.items():
        u = by_email.get(e)
        if u is None:
            continue
        check(enum_str(u.state) == want["state"], "user %s state %r, expected %r" % (e, enum_str(u.state), want["state"]))
        check(u.directory_id == directory_id, "user %s directory_id %r" % (e, u.directory_id))
        if org_id:
            check(u.organization_id == org_id, "user %s organization_id %r" % (e, u.organization_id))
        check(isinstance(u.custom_attributes, dict), "user %s custom_attributes is not an object" % e)
        if want.get("role"):
            check(u.role is not None and u.role.slug == want["role"], "user %s role %r, expected slug %r"
                  % (e, u.role, want["role"]))
            check(u.roles is not None and want["role"] in [r.slug for r in u.roles],
                  "user %s roles %r lack %r" % (e, u.roles, want["role"]))
    for e in deleted:
        check(e not in by_email, "deleted user %s is still returned by list_users" % e)
    # created_at must be non-increasing with the default order=desc
    cts = [u.created_at for u in users]
    check(all(a >= b for a, b in zip(cts, cts[1:])), "list_users (order=desc) is not sorted by created_at desc")

    # same set in ascending order with limit=100, and exactly reversed
    users_asc = collect(ds.list_users(directory=directory_id, order="asc", limit=100), "ds.list_users")
    check([u.id for u in users_asc] == list(reversed(ids)),
          "list_users(order=asc, limit=100) is not the exact reverse of order=desc (%d vs %d items)"
          % (len(users_asc), len(ids)))
    # one explicit page: limit honoured, list_metadata.after = last id
    page = ds.list_users(directory=directory_id, limit=3)
    check(len(page.data) == min(3, len(ids)), "list_users(limit=3) returned %d items" % len(page.data))
    if len(ids) > 3:
        check(page.list_metadata.after == page.data[-1].id,
              "list_metadata.after %r != last item id %r" % (page.list_metadata.after, page.data[-1].id))

    # ---- get_user --------------------------------------------------------------
    sample = users[:3] + [u for u in users if enum_str(u.state) != "active"][:3]
    for u in sample:
        g = ds.get_user(u.id)
        check(g.id == u.id and g.email == u.email and enum_str(g.state) == enum_str(u.state),
              "get_user(%s) -> (%s,%s,%s) differs from list item" % (u.id, g.id, g.email, enum_str(g.state)))
    try:
        ds.get_user("directory_user_01AAAAAAAAAAAAAAAAAAAAAAAA")
        fail("get_user(<unknown id>) did not raise NotFoundError")
    except workos.NotFoundError:
        pass

    # ---- list_users(email=, idp_id=): only the users they name ----------------
    for u in sample[:3]:
        got = collect(ds.list_users(directory=directory_id, email=(u.email or "").upper()), "ds.list_users")
        check([x.id for x in got] == [u.id], "list_users(email=%r) -> %r, expected [%s]"
              % (u.email, [x.id for x in got], u.id))
        got = collect(ds.list_users(directory=directory_id, idp_id=u.idp_id), "ds.list_users")
        check(u.id in [x.id for x in got] and all(x.idp_id == u.idp_id for x in got),
              "list_users(idp_id=%r) -> %r" % (u.idp_id, [(x.id, x.idp_id) for x in got]))
    for kw in ({"email": "nobody@nowhere.invalid"}, {"idp_id": "no such idp id"}):
        got = collect(ds.list_users(directory=directory_id, **kw), "ds.list_users")
        check(got == [], "list_users(%r) -> %r, expected nobody" % (kw, [x.id for x in got]))

    # ---- groups ---------------------------------------------------------------
    groups = collect(ds.list_groups(directory=directory_id), "ds.list_groups")
    gids = [g.id for g in groups]
    check(len(gids) == len(set(gids)), "list_groups(directory) returned duplicate ids")
    gnames = [g.name for g in groups]
    for eg in exp_groups:
        check(gnames.count(eg["name"]) == 1, "group %r listed %d times by list_groups(directory)"
              % (eg["name"], gnames.count(eg["name"])))
        grp = next((g for g in groups if g.name == eg["name"]), None)
        if grp is None:
            continue
        gg = ds.get_group(grp.id)
        check(gg.id == grp.id and gg.name == grp.name and gg.directory_id == directory_id,
              "get_group(%s) mismatch: %r" % (grp.id, gg))
        if org_id:
            check(gg.organization_id == org_id, "group %s organization_id %r" % (grp.name, gg.organization_id))
        members = {(u.email or "").lower() for u in collect(ds.list_users(group=grp.id), "list_users(group)")}
        check(members == {m.lower() for m in eg["members"]},
              "list_users(group=%s) -> %s, expected %s" % (eg["name"], sorted(members), sorted(eg["members"])))
        for m in eg["members"]:
            u = by_email.get(m.lower())
            if u is None:
                fail("group member %s not in list_users" % m)
                continue
            ug = [g.name for g in collect(ds.list_groups(user=u.id), "list_groups(user)")]
            check(eg["name"] in ug, "list_groups(user=%s) -> %s, missing %r" % (m, ug, eg["name"]))
    try:
        ds.get_group("directory_group_01AAAAAAAAAAAAAAAAAAAAAAAA")
        fail("get_group(<unknown id>) did not raise NotFoundError")
    except workos.NotFoundError:
        pass

    # ---- errors -----------------------------------------------------------------
    bad = WorkOSClient(api_key=key + "x", base_url=url, max_retries=0)
    try:
        bad.directory_sync.list_users(directory=directory_id)
        fail("a wrong API key did not raise AuthenticationError (401)")
    except workos.AuthenticationError:
        pass

    # ---- events, paged to the end ---------------------------------------------------
    evs = collect(client.events.list_events(events=DSYNC_EVENTS), "client.events.list_events")
    eids = [e.id for e in evs]
    check(len(eids) == len(set(eids)), "events: duplicate ids across pages (%d vs %d unique)" % (len(eids), len(set(eids))))
    unknown = [e for e in evs if isinstance(e, EventSchemaUnknown)]
    check(not unknown, "events the SDK does not know: %s" % [u.raw_data.get("event") for u in unknown][:5])
    known = [e for e in evs if not isinstance(e, EventSchemaUnknown)]
    if expect.get("check_event_order", True):
        ects = [e.created_at for e in known]
        check(all(a <= b for a, b in zip(ects, ects[1:])), "events (no order param) are not oldest-first")
    kinds = {}
    for e in known:
        kinds[e.event] = kinds.get(e.event, 0) + 1
        check(e.object == "event", "event %s object %r" % (e.id, e.object))
    created = {(e.data.email or "").lower() for e in known if e.event == "dsync.user.created"}
    miss_created = [x for x in exp_users if x not in created]
    check(not miss_created, "no dsync.user.created event for %d users, e.g. %s" % (len(miss_created), miss_created[:5]))
    del_events = {(e.data.email or "").lower(): e for e in known if e.event == "dsync.user.deleted"}
    for x in deleted:
        check(x in del_events, "no dsync.user.deleted event for %s" % x)
        if x in del_events and expect.get("deleted_get_404", True):
            try:
                ds.get_user(del_events[x].data.id)
                fail("get_user(<deleted user %s>) did not raise NotFoundError" % x)
            except workos.NotFoundError:
                pass
    added = {(e.data.group.name, (e.data.user.email or "").lower()) for e in known if e.event == "dsync.group.user_added"}
    for e in known:
        if e.event == "dsync.group.user_added":
            check(e.data.directory_id == directory_id, "user_added event %s directory_id %r" % (e.id, e.data.directory_id))
    for eg in exp_groups:
        for m in eg["members"]:
            check((eg["name"], m.lower()) in added, "no dsync.group.user_added event for (%s, %s)" % (eg["name"], m))
    gone = {e.data.id: e.data for e in known if e.event == "dsync.deleted"}
    for d in expect.get("deleted_directories", []):
        check(d in gone, "no dsync.deleted event for %s" % d)
        if d in gone:
            check(enum_str(gone[d].state) == "deleting", "dsync.deleted %s state %r" % (d, gone[d].state))
    # filter honoured: only the requested type comes back
    only = collect(client.events.list_events(events=["dsync.user.deleted"], limit=100), "client.events.list_events")
    check(all(getattr(e, "event", None) == "dsync.user.deleted" for e in only),
          "events filter not honoured: %s" % sorted({getattr(e, 'event', '?') for e in only}))
    check(len(only) == kinds.get("dsync.user.deleted", 0), "events=[dsync.user.deleted] returned %d, full scan had %d"
          % (len(only), kinds.get("dsync.user.deleted", 0)))

    # ---- webhooks -------------------------------------------------------------------
    wh = "skipped"
    body_file = os.environ.get("WEBHOOK_BODY_FILE")
    if body_file:
        with open(body_file, "rb") as f:
            body = f.read()
        sig = env("WEBHOOK_SIGNATURE")
        secret = env("WEBHOOK_SECRET")
        tol = int(os.environ.get("WEBHOOK_TOLERANCE", "180"))
        try:
            ev = client.webhooks.verify_event(event_body=body, event_signature=sig, secret=secret, tolerance=tol)
            check(not isinstance(ev, EventSchemaUnknown), "webhook event type unknown to the SDK")
            check(getattr(ev, "event", "").startswith("dsync."), "webhook event %r is not dsync.*" % getattr(ev, "event", None))
            wh = getattr(ev, "event", "?")
        except ValueError as e:
            fail("webhooks.verify_event rejected the captured webhook: %s" % (e,))
        tampered = json.loads(body)
        tampered["id"] = tampered.get("id", "") + "x"
        tampered_body = json.dumps(tampered, separators=(",", ":"), ensure_ascii=False).encode()
        for label, b, s, k in [("tampered body", tampered_body, sig, secret),
                               ("tampered signature", body, sig[:-1] + ("0" if sig[-1] != "0" else "1"), secret),
                               ("wrong secret", body, sig, secret + "x")]:
            try:
                client.webhooks.verify_event(event_body=b, event_signature=s, secret=k, tolerance=tol)
                fail("webhooks.verify_event accepted a %s" % label)
            except ValueError:
                pass
    elif os.environ.get("WEBHOOK_OPTIONAL") != "1":
        fail("WEBHOOK_BODY_FILE not set (set WEBHOOK_OPTIONAL=1 to skip webhook checks)")

    if FAILURES:
        print("FAILED python-sdk: %d problem(s)" % len(FAILURES), file=sys.stderr)
        sys.exit(1)
    print("OK python-sdk workos=%s users=%d groups=%d events=%d (%s) webhook=%s in %.1fs"
          % (getattr(workos, "__version__", None) or _pkg_version(), len(users), len(groups), len(evs),
             ", ".join("%s:%d" % kv for kv in sorted(kinds.items())), wh, time.time() - t_start))


def _pkg_version():
    try:
        from importlib.metadata import version
        return version("workos")
    except Exception:
        return "?"


if __name__ == "__main__":
    try:
        main()
    except workos.WorkOSError as e:  # SDK-level failure: parse error, HTTP error, ...
        print("FAIL: SDK raised %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # e.g. AttributeError inside the SDK on list_metadata: null
        import traceback
        traceback.print_exc()
        print("FAIL: unexpected %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
