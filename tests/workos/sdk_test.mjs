#!/usr/bin/env node
// scimd <-> official WorkOS Node SDK (@workos-inc/node 12.x) compatibility check.
//
// Run by the Rust integration test AFTER it has driven SCIM traffic into scimd,
// from this directory after `npm ci` (node_modules next to this file).
// Same environment contract as sdk_test.py (see its header for the EXPECT_JSON format):
//   SCIMD_URL          http://127.0.0.1:PORT  (scheme, host, port only: the Node SDK cannot use a path prefix)
//   WORKOS_API_KEY     API key scimd accepts as Bearer token
//   DIRECTORY_ID       directory id of the scimd tenant under test
//   EXPECT_JSON        path of the expectations JSON written by the Rust test
//   WEBHOOK_BODY_FILE  raw body of one captured webhook POST
//   WEBHOOK_SIGNATURE  its WorkOS-Signature header ("t=<ms>, v1=<hex>")
//   WEBHOOK_SECRET     webhook secret configured in scimd
//   WEBHOOK_TOLERANCE  optional, seconds (default 180)
//   WEBHOOK_OPTIONAL   optional, "1" = skip webhook checks when WEBHOOK_BODY_FILE is unset
// Exit 0 and a final "OK node-sdk ..." line on success; non-zero with "FAIL: ..." lines otherwise.

import { readFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { WorkOS, NotFoundException, UnauthorizedException, SignatureVerificationException } from '@workos-inc/node';

const require = createRequire(import.meta.url);
const SDK_VERSION = require('@workos-inc/node/package.json').version;

const DSYNC_EVENTS = [
  'dsync.activated', 'dsync.deleted',
  'dsync.group.created', 'dsync.group.deleted', 'dsync.group.updated',
  'dsync.group.user_added', 'dsync.group.user_removed',
  'dsync.user.created', 'dsync.user.deleted', 'dsync.user.updated',
];

const failures = [];
const fail = (msg) => { failures.push(msg); console.error('FAIL: ' + msg); };
const check = (cond, msg) => { if (!cond) fail(msg); return cond; };
const env = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`FAIL: missing env var ${name} (see header of sdk_test.mjs)`); process.exit(2); }
  return v;
};
const lc = (s) => (s ?? '').toLowerCase();
// A time as the SDK gives it: a Date since 12.x, an ISO 8601 string before.
const isTime = (t) => !Number.isNaN(new Date(t).getTime()) && (t instanceof Date || typeof t === 'string');

async function expectReject(promise, cls, what) {
  try { await promise; fail(`${what} did not throw ${cls.name}`); }
  catch (e) { if (!(e instanceof cls)) fail(`${what} threw ${e?.name}: ${e?.message}, expected ${cls.name}`); }
}

async function main() {
  const t0 = Date.now();
  const url = new URL(env('SCIMD_URL'));
  if (url.pathname !== '/' && url.pathname !== '') {
    fail(`SCIMD_URL has a path (${url.pathname}); the Node SDK can only talk to host:port root`);
  }
  const key = env('WORKOS_API_KEY');
  const directoryId = env('DIRECTORY_ID');
  const expect = JSON.parse(readFileSync(env('EXPECT_JSON'), 'utf8'));
  const orgId = expect.organization_id;
  const expUsers = new Map((expect.users ?? []).map((u) => [lc(u.email), u]));
  const deleted = (expect.deleted_emails ?? []).map(lc);
  const expGroups = expect.groups ?? [];

  const opts = {
    apiHostname: url.hostname,
    port: url.port ? Number(url.port) : undefined,
    https: url.protocol === 'https:',
  };
  const workos = new WorkOS(key, opts);
  const ds = workos.directorySync;

  // ---- directories ----
  const d = await ds.getDirectory({ id: directoryId });
  check(d.id === directoryId, `getDirectory returned id ${d.id}`);
  if (orgId) check(d.organizationId === orgId, `directory.organizationId ${d.organizationId} != ${orgId}`);
  const dirs = await (await ds.listDirectories()).autoPagination();
  check(dirs.some((x) => x.id === directoryId), `listDirectories() lacks ${directoryId}`);

  // ---- users: autoPagination (re-fetches with limit=100, order=desc) ----
  const users = await (await ds.listUsers({ directory: directoryId })).autoPagination();
  const ids = users.map((u) => u.id);
  check(new Set(ids).size === ids.length, `listUsers autoPagination returned duplicates: ${ids.length} items, ${new Set(ids).size} unique`);
  if (expect.total_users !== undefined) {
    check(users.length === expect.total_users, `listUsers returned ${users.length} users, expected ${expect.total_users}`);
  }
  const byEmail = new Map(users.map((u) => [lc(u.email), u]));
  check(byEmail.size === users.length, 'duplicate emails in listUsers');
  const missing = [...expUsers.keys()].filter((e) => !byEmail.has(e));
  check(missing.length === 0, `${missing.length} expected users missing from listUsers, e.g. ${missing.slice(0, 5)}`);
  for (const [e, want] of expUsers) {
    const u = byEmail.get(e);
    if (!u) continue;
    check(u.state === want.state, `user ${e} state ${u.state}, expected ${want.state}`);
    check(u.object === 'directory_user', `user ${e} object ${u.object}`);
    check(u.directoryId === directoryId, `user ${e} directoryId ${u.directoryId}`);
    if (orgId) check(u.organizationId === orgId, `user ${e} organizationId ${u.organizationId}`);
    check(Array.isArray(u.groups), `user ${e} groups is not an array`);
    check(u.customAttributes !== null && typeof u.customAttributes === 'object', `user ${e} customAttributes is not an object`);
    check([u.createdAt, u.updatedAt].every(isTime), `user ${e} createdAt/updatedAt not times`);
    if (want.role) {
      check(u.role?.slug === want.role, `user ${e} role ${JSON.stringify(u.role)}, expected slug ${want.role}`);
      check((u.roles ?? []).some((r) => r.slug === want.role), `user ${e} roles ${JSON.stringify(u.roles)} lack ${want.role}`);
    }
  }
  for (const e of deleted) check(!byEmail.has(e), `deleted user ${e} is still returned by listUsers`);

  // manual paging, small pages, ascending: same set, exact reverse of desc
  const asc = [];
  let after;
  for (let guard = 0; guard < 10000; guard++) {
    const page = await ds.listUsers({ directory: directoryId, limit: 7, order: 'asc', after });
    asc.push(...page.data);
    after = page.listMetadata.after;
    if (!after) break;
    check(after === page.data[page.data.length - 1]?.id, `listMetadata.after ${after} != last item id`);
  }
  check(JSON.stringify(asc.map((u) => u.id)) === JSON.stringify([...ids].reverse()),
    `listUsers(order=asc, limit=7) manual paging is not the exact reverse of desc (${asc.length} vs ${ids.length})`);

  // ---- getUser ----
  const sample = [...users.slice(0, 3), ...users.filter((u) => u.state !== 'active').slice(0, 3)];
  for (const u of sample) {
    const g = await ds.getUser({ id: u.id });
    check(g.id === u.id && g.email === u.email && g.state === u.state && Array.isArray(g.groups),
      `getUser(${u.id}) differs from list item`);
  }
  await expectReject(ds.getUser({ id: 'directory_user_01AAAAAAAAAAAAAAAAAAAAAAAA' }), NotFoundException, 'getUser(<unknown id>)');

  // ---- groups ----
  const groups = await (await ds.listGroups({ directory: directoryId })).autoPagination();
  check(new Set(groups.map((g) => g.id)).size === groups.length, 'listGroups(directory) returned duplicate ids');
  for (const eg of expGroups) {
    const matches = groups.filter((g) => g.name === eg.name);
    check(matches.length === 1, `group ${eg.name} listed ${matches.length} times by listGroups(directory)`);
    const grp = matches[0];
    if (!grp) continue;
    const gg = await ds.getGroup({ id: grp.id });
    check(gg.id === grp.id && gg.name === grp.name && gg.directoryId === directoryId, `getGroup(${grp.id}) mismatch`);
    const members = new Set((await (await ds.listUsers({ group: grp.id })).autoPagination()).map((u) => lc(u.email)));
    const want = new Set(eg.members.map(lc));
    check(members.size === want.size && [...want].every((m) => members.has(m)),
      `listUsers({group: ${eg.name}}) -> ${[...members]}, expected ${[...want]}`);
    for (const m of eg.members) {
      const u = byEmail.get(lc(m));
      if (!u) { fail(`group member ${m} not in listUsers`); continue; }
      check(u.groups.some((g) => g.id === grp.id) || u.groups.length === 0,
        `user ${m}.groups does not contain ${eg.name}`);
      const ug = (await (await ds.listGroups({ user: u.id })).autoPagination()).map((g) => g.name);
      check(ug.includes(eg.name), `listGroups({user: ${m}}) -> ${ug}, missing ${eg.name}`);
    }
  }
  await expectReject(ds.getGroup({ id: 'directory_group_01AAAAAAAAAAAAAAAAAAAAAAAA' }), NotFoundException, 'getGroup(<unknown id>)');

  // ---- the methods under a directory (12.x; listUsers and the like are deprecated for them) ----
  const scoped = await (await ds.listDirectoryUsers({ directoryId })).autoPagination();
  check(JSON.stringify(scoped.map((u) => u.id)) === JSON.stringify(ids),
    `listDirectoryUsers lists ${scoped.length} users, listUsers ${ids.length}, or in another order`);
  for (const u of scoped.slice(0, 3)) {
    const g = await ds.getDirectoryUser({ directoryId, userId: u.id });
    check(g.id === u.id && g.email === u.email && g.state === u.state, `getDirectoryUser(${u.id}) differs from list item`);
  }
  await expectReject(ds.getDirectoryUser({ directoryId, userId: 'directory_user_01AAAAAAAAAAAAAAAAAAAAAAAA' }),
    NotFoundException, 'getDirectoryUser(<unknown id>)');
  await expectReject(ds.listDirectoryUsers({ directoryId: 'directory_01AAAAAAAAAAAAAAAAAAAAAAAA' }),
    NotFoundException, 'listDirectoryUsers(<unknown directory>)');
  const scopedGroups = await (await ds.listDirectoryGroups({ directoryId })).autoPagination();
  check(JSON.stringify(scopedGroups.map((g) => g.id)) === JSON.stringify(groups.map((g) => g.id)),
    'listDirectoryGroups lists other groups than listGroups({directory})');
  for (const eg of expGroups) {
    const grp = scopedGroups.find((g) => g.name === eg.name);
    if (!check(grp, `group ${eg.name} missing from listDirectoryGroups`)) continue;
    const gg = await ds.getDirectoryGroup({ directoryId, groupId: grp.id });
    check(gg.id === grp.id && gg.name === grp.name, `getDirectoryGroup(${grp.id}) mismatch`);
    const members = new Set((await (await ds.listDirectoryUsers({ directoryId, group: grp.id })).autoPagination())
      .map((u) => lc(u.email)));
    check(members.size === eg.members.length && eg.members.every((m) => members.has(lc(m))),
      `listDirectoryUsers({group: ${eg.name}}) -> ${[...members]}, expected ${eg.members}`);
    const first = byEmail.get(lc(eg.members[0] ?? ''));
    if (first) {
      const ug = (await (await ds.listDirectoryGroups({ directoryId, user: first.id })).autoPagination()).map((g) => g.name);
      check(ug.includes(eg.name), `listDirectoryGroups({user: ${eg.members[0]}}) -> ${ug}, missing ${eg.name}`);
    }
  }
  await expectReject(ds.getDirectoryGroup({ directoryId, groupId: 'directory_group_01AAAAAAAAAAAAAAAAAAAAAAAA' }),
    NotFoundException, 'getDirectoryGroup(<unknown id>)');

  // ---- errors ----
  const bad = new WorkOS(key + 'x', opts);
  await expectReject(bad.directorySync.listUsers({ directory: directoryId }), UnauthorizedException, 'wrong API key');

  // ---- events (listEvents has no autoPagination: page manually on listMetadata.after) ----
  const evs = [];
  after = undefined;
  for (let guard = 0; guard < 100000; guard++) {
    const page = await workos.events.listEvents({ events: DSYNC_EVENTS, limit: 100, after });
    evs.push(...page.data);
    after = page.listMetadata?.after;
    if (!after) break;
  }
  check(evs.every((e) => e !== undefined), 'some events were unknown to the SDK (deserialized to undefined)');
  const known = evs.filter(Boolean);
  check(new Set(known.map((e) => e.id)).size === known.length, 'events: duplicate ids across pages');
  if (expect.check_event_order ?? true) {
    check(known.every((e, i) => i === 0 || known[i - 1].createdAt <= e.createdAt), 'events (no order param) are not oldest-first');
  }
  const kinds = {};
  for (const e of known) kinds[e.event] = (kinds[e.event] ?? 0) + 1;
  const created = new Set(known.filter((e) => e.event === 'dsync.user.created').map((e) => lc(e.data.email)));
  const missCreated = [...expUsers.keys()].filter((e) => !created.has(e));
  check(missCreated.length === 0, `no dsync.user.created event for ${missCreated.length} users, e.g. ${missCreated.slice(0, 5)}`);
  const delEvents = new Map(known.filter((e) => e.event === 'dsync.user.deleted').map((e) => [lc(e.data.email), e]));
  for (const x of deleted) {
    if (!check(delEvents.has(x), `no dsync.user.deleted event for ${x}`)) continue;
    if (expect.deleted_get_404 ?? true) {
      await expectReject(ds.getUser({ id: delEvents.get(x).data.id }), NotFoundException, `getUser(<deleted user ${x}>)`);
    }
  }
  const gone = new Map(known.filter((e) => e.event === 'dsync.deleted').map((e) => [e.data.id, e.data]));
  for (const d of expect.deleted_directories ?? []) {
    if (!check(gone.has(d), `no dsync.deleted event for ${d}`)) continue;
    check(gone.get(d).state === 'deleting', `dsync.deleted ${d} state ${gone.get(d).state}`);
  }
  const added = new Set(known.filter((e) => e.event === 'dsync.group.user_added')
    .map((e) => `${e.data.group.name}\u0000${lc(e.data.user.email)}`));
  for (const e of known.filter((e) => e.event === 'dsync.group.user_added')) {
    check(e.data.directoryId === directoryId, `user_added event ${e.id} directoryId ${e.data.directoryId}`);
  }
  for (const eg of expGroups) {
    for (const m of eg.members) {
      check(added.has(`${eg.name}\u0000${lc(m)}`), `no dsync.group.user_added event for (${eg.name}, ${m})`);
    }
  }

  // ---- webhooks ----
  let wh = 'skipped';
  const bodyFile = process.env.WEBHOOK_BODY_FILE;
  if (bodyFile) {
    const raw = readFileSync(bodyFile, 'utf8');
    const sigHeader = env('WEBHOOK_SIGNATURE');
    const secret = env('WEBHOOK_SECRET');
    const tolerance = Number(process.env.WEBHOOK_TOLERANCE ?? '180') * 1000;
    const payload = JSON.parse(raw); // what express.json() would hand the app
    try {
      const ev = await workos.webhooks.constructEvent({ payload, sigHeader, secret, tolerance });
      check(ev && typeof ev.event === 'string' && ev.event.startsWith('dsync.'), `webhook event ${ev?.event} is not a known dsync.* event`);
      wh = ev?.event;
    } catch (e) {
      let hint = '';
      const t = sigHeader.split(',')[0].split('=')[1];
      const rawSig = createHmac('sha256', secret).update(`${t}.${raw}`).digest('hex');
      if (sigHeader.endsWith(rawSig) && JSON.stringify(payload) !== raw) {
        hint = ' (the raw body IS correctly signed, but JSON.stringify(JSON.parse(body)) !== body: ' +
          'scimd must emit compact JSON that round-trips byte-exactly through JavaScript)';
      }
      fail(`webhooks.constructEvent rejected the captured webhook: ${e?.name}: ${e?.message}${hint}`);
    }
    const tampered = { ...payload, id: `${payload.id}x` };
    const lastCh = sigHeader.slice(-1) === '0' ? '1' : '0';
    for (const [label, p, s, k] of [
      ['tampered payload', tampered, sigHeader, secret],
      ['tampered signature', payload, sigHeader.slice(0, -1) + lastCh, secret],
      ['wrong secret', payload, sigHeader, secret + 'x'],
    ]) {
      await expectReject(workos.webhooks.constructEvent({ payload: p, sigHeader: s, secret: k, tolerance }),
        SignatureVerificationException, `webhooks.constructEvent with a ${label}`);
    }
  } else if (process.env.WEBHOOK_OPTIONAL !== '1') {
    fail('WEBHOOK_BODY_FILE not set (set WEBHOOK_OPTIONAL=1 to skip webhook checks)');
  }

  if (failures.length) {
    console.error(`FAILED node-sdk: ${failures.length} problem(s)`);
    process.exit(1);
  }
  const kindStr = Object.entries(kinds).sort().map(([k, v]) => `${k}:${v}`).join(', ');
  console.log(`OK node-sdk @workos-inc/node=${SDK_VERSION} users=${users.length} groups=${groups.length} ` +
    `events=${evs.length} (${kindStr}) webhook=${wh} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

main().catch((e) => {
  console.error(`FAIL: SDK call threw ${e?.name}: ${e?.message}`);
  if (e?.stack) console.error(e.stack);
  process.exit(1);
});
