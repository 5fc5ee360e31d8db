// Policy files: ConnMan's format with our decisions (numbers, cgroup, ContextIdentifier,
// bad groups skipped alone), accounts parsing, and matchPolicy over parsed groups. Pure.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Identity, PolicyGroup } from '../../../src/engine/session-types.ts';
import { matchPolicy } from '../../../src/engine/sessions.ts';
import { accountsFrom, parseGroup, parsePasswd } from '../../../src/daemon/policy/accounts.ts';
import { isPolicyFileName, normalizeCgroup, parsePolicyFile } from '../../../src/daemon/policy/policy-file.ts';

const PASSWD = `root:x:0:0:root:/root:/bin/bash
# a comment
navi:x:1001:1001:Navigation:/home/navi:/usr/sbin/nologin
media:x:1002:1002::/home/media:/bin/sh
+nisuser::::::
broken-line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
navi:x:2000:2000:duplicate, ignored:/:/bin/false
`;
const GROUP = `root:x:0:
navi:x:1001:
media:x:1002:
audio:x:29:navi,media
users:x:100: navi
nogroup:x:65534:
`;
const accounts = accountsFrom(PASSWD, GROUP);

const CONNMAN_EXAMPLE = `[policy_navi]
uid = navi
AllowedBearers = ethernet cellular
ConnectionType = internet
Priority = true
RoamingPolicy = national

[policy_media]
gid = media
AllowedBearers = wifi *
ConnectionType = any

[policy_ecall]
selinux = ecall_t
AllowedBearers = cellular
EmergencyCall = true
RoamingPolicy = always
`;

const parse = (text: string, file = 'test.policy') => parsePolicyFile(file, text, accounts);

describe('accounts', () => {
  test('passwd and group files', () => {
    assert.deepEqual(parsePasswd(PASSWD).map((u) => [u.name, u.uid, u.gid]), [
      ['root', 0, 0],
      ['navi', 1001, 1001],
      ['media', 1002, 1002],
      ['nobody', 65534, 65534],
      ['navi', 2000, 2000],
    ]);
    assert.deepEqual(parseGroup(GROUP).find((g) => g.name === 'audio')?.members, ['navi', 'media']);
    // the first entry of a name wins, like getpwnam
    assert.equal(accounts.resolveUser('navi'), 1001);
    assert.equal(accounts.resolveUser('ghost'), undefined);
    assert.equal(accounts.resolveGroup('audio'), 29);
    assert.deepEqual(accounts.groupsOf(1001), [1001, 29, 100]);
    assert.deepEqual(accounts.groupsOf(4242), []);
  });
});

describe('policy file', () => {
  test("ConnMan's own example", () => {
    const r = parse(CONNMAN_EXAMPLE, 'navi.policy');
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.groups, [
      {
        file: 'navi.policy',
        name: 'policy_navi',
        match: { uid: 1001 },
        allowedBearers: ['ethernet', 'cellular'],
        connectionType: 'internet',
        priority: true,
        roamingPolicy: 'national',
      },
      { file: 'navi.policy', name: 'policy_media', match: { gid: 1002 }, allowedBearers: ['wifi', '*'], connectionType: 'any' },
      { file: 'navi.policy', name: 'policy_ecall', match: { selinux: 'ecall_t' }, allowedBearers: ['cellular'], emergencyCall: true, roamingPolicy: 'always' },
    ] satisfies PolicyGroup[]);
  });

  test('numbers and names for uid and gid; booleans; any group name', () => {
    const r = parse(`[a]\nuid = 1234\nPriority = 1\nEmergencyCall = 0\n[b]\ngid = audio\n[c]\nuid=0\n[whatever]\ngid = 65534\n`);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(
      r.groups.map((g) => [g.name, g.match, g.priority, g.emergencyCall]),
      [
        ['a', { uid: 1234 }, true, false],
        ['b', { gid: 29 }, undefined, undefined],
        ['c', { uid: 0 }, undefined, undefined],
        ['whatever', { gid: 65534 }, undefined, undefined],
      ],
    );
  });

  test('bad groups are skipped, the good ones stay (ConnMan drops the whole file)', () => {
    const r = parse(`[good1]
uid = navi
[unknown_user]
uid = ghost
[unknown_group]
gid = ghosts
[bad_type]
gid = media
ConnectionType = wired
[bad_bool]
uid = 5
Priority = yes
[bad_roaming]
uid = 6
RoamingPolicy = sometimes
[bad_iface]
uid = 7
AllowedInterface = a-very-long-interface-name
[slash_iface]
uid = 8
AllowedInterface = eth0/1
[no_identity]
AllowedBearers = wifi
[two_identities]
uid = navi
gid = media
[out_of_range]
uid = 4294967295
[good2]
gid = 100
AllowedInterface = wlan0
`);
    assert.deepEqual(
      r.groups.map((g) => g.name),
      ['good1', 'good2'],
    );
    assert.equal(r.groups[1]?.allowedInterface, 'wlan0');
    const skipped = r.warnings.filter((w) => w.includes('group skipped'));
    assert.equal(skipped.length, 10, r.warnings.join('\n'));
    for (const [name, why] of [
      ['unknown_user', "unknown user 'ghost'"],
      ['unknown_group', "unknown group 'ghosts'"],
      ['bad_type', "ConnectionType: 'wired'"],
      ['bad_bool', "Priority: 'yes'"],
      ['bad_roaming', "RoamingPolicy: 'sometimes'"],
      ['bad_iface', 'AllowedInterface'],
      ['slash_iface', 'AllowedInterface'],
      ['no_identity', 'no uid, gid, selinux, cgroup or ContextIdentifier'],
      ['two_identities', 'more than one of'],
      ['out_of_range', 'out of range'],
    ]) {
      assert.ok(
        skipped.some((w) => w.startsWith(`test.policy [${name}]`) && w.includes(why!)),
        `${name}: ${why}\n${r.warnings.join('\n')}`,
      );
    }
  });

  test('unknown bearers are ignored with a warning; an empty result allows nothing', () => {
    const r = parse(`[p]\nuid = 1\nAllowedBearers = wifi, bogus;ethernet  wifi *\n[q]\nuid = 2\nAllowedBearers = nothing\n[r]\nuid=3\nAllowedBearers = vpn\n`);
    assert.deepEqual(
      r.groups.map((g) => g.allowedBearers),
      [['wifi', 'ethernet', '*'], [], ['vpn']],
    );
    assert.ok(r.warnings.some((w) => w.startsWith('test.policy [p]') && w.includes("'bogus'")));
    assert.ok(r.warnings.some((w) => w.startsWith('test.policy [q]') && w.includes('allows no bearer')));
  });

  test('ContextIdentifier alone, and with an identity', () => {
    const r = parse(`[ctx]\nContextIdentifier = navi-route\nAllowedBearers = cellular\n[ctx_uid]\nuid = navi\nContextIdentifier = nav\\sguidance\n[empty]\nContextIdentifier =\n`);
    assert.deepEqual(
      r.groups.map((g) => [g.name, g.match]),
      [
        ['ctx', { contextIdentifier: 'navi-route' }],
        ['ctx_uid', { uid: 1001, contextIdentifier: 'nav guidance' }],
      ],
    );
    assert.ok(r.warnings.some((w) => w.includes('[empty]') && w.includes('ContextIdentifier is empty')));
  });

  test('cgroup paths: normalised, relative and .. refused', () => {
    const r = parse(`[a]\ncgroup = /system.slice/navi.service/\n[b]\ncgroup = //user.slice//user-1000.slice\n[c]\ncgroup = system.slice\n[d]\ncgroup = /system.slice/../init.scope\n[e]\ncgroup = /\n[f]\ncgroup = /a/./b\n`);
    assert.deepEqual(
      r.groups.map((g) => [g.name, g.match.cgroup]),
      [
        ['a', '/system.slice/navi.service'],
        ['b', '/user.slice/user-1000.slice'],
        ['e', '/'],
      ],
    );
    assert.equal(r.warnings.filter((w) => w.includes('group skipped') && w.includes('cgroup')).length, 3);
    assert.equal(normalizeCgroup('/x///'), '/x');
  });

  test('selinux: a type, or a full context reduced to its type with a note', () => {
    const r = parse(`[t]\nselinux = ecall_t\n[full]\nselinux = system_u:system_r:navi_t:s0\n[bad]\nselinux = a:b\n`);
    assert.deepEqual(
      r.groups.map((g) => g.match.selinux),
      ['ecall_t', 'navi_t'],
    );
    assert.ok(r.warnings.some((w) => w.includes('[full]') && w.includes("only its type 'navi_t'")));
    assert.ok(r.warnings.some((w) => w.includes('[bad]') && w.includes('group skipped')));
  });

  test('unknown keys: a warning (with a hint for the wrong case), the group stays if it has an identity', () => {
    const r = parse(`[p]\nuid = 1\nSourceIPRule = true\n[q]\nUID = navi\n`);
    assert.deepEqual(
      r.groups.map((g) => g.name),
      ['p'],
    );
    assert.ok(r.warnings.some((w) => w.includes("unknown key 'SourceIPRule'")));
    assert.ok(r.warnings.some((w) => w.includes("unknown key 'UID'") && w.includes("did you mean 'uid'")));
  });

  test('AllowedInterface * means any interface', () => {
    const r = parse(`[p]\nuid = 1\nAllowedInterface = *\n`);
    assert.equal(r.groups[0]?.allowedInterface, undefined);
    assert.deepEqual(r.warnings, []);
  });

  test('broken syntax: no groups, one warning', () => {
    for (const text of ['this is not a key file\nat all\n', 'uid = 1\n[p]\nuid = 2\n', '[p]\nuid = 1\ngarbage line\n', '\0\x01\x02binary']) {
      const r = parse(text, 'broken.policy');
      assert.deepEqual(r.groups, [], text);
      assert.equal(r.warnings.length, 1, text);
      assert.match(r.warnings[0]!, /^broken\.policy: not a key file/);
    }
    // empty and comment-only files are fine and empty
    assert.deepEqual(parse('# nothing yet\n'), { groups: [], warnings: [] });
  });

  test('file names', () => {
    assert.ok(isPolicyFileName('navi.policy'));
    assert.ok(isPolicyFileName('10-media.policy'));
    assert.ok(!isPolicyFileName('.navi.policy'));
    assert.ok(!isPolicyFileName('.policy'));
    assert.ok(!isPolicyFileName('navi.policy~'));
    assert.ok(!isPolicyFileName('navi.policy.swp'));
    assert.ok(!isPolicyFileName('navi.conf'));
  });
});

describe('matchPolicy over parsed groups', () => {
  const { groups, warnings } = parse(`[by_cgroup]
cgroup = /system.slice
AllowedBearers = ethernet
[by_deeper_cgroup]
cgroup = /system.slice/navi.service
AllowedBearers = wifi
[by_gid]
gid = audio
AllowedBearers = cellular
[by_uid]
uid = navi
AllowedBearers = ethernet cellular
[by_uid_ctx]
uid = navi
ContextIdentifier = maps
AllowedBearers = wifi
[by_selinux]
selinux = navi_t
EmergencyCall = true
[ctx_only]
ContextIdentifier = telemetry
AllowedBearers = cellular
`);
  const names = (id: Identity, ctx = ''): string | undefined => matchPolicy(groups, id, ctx)?.name;
  const navi: Identity = { uid: 1001, gids: [1001, 29], pid: 42, cgroup: '/system.slice/navi.service' };

  test('parsed cleanly', () => assert.deepEqual(warnings, []));
  test('selinux beats uid beats gid beats cgroup', () => {
    assert.equal(names({ ...navi, selinux: 'system_u:system_r:navi_t:s0' }), 'by_selinux');
    assert.equal(names(navi), 'by_uid');
    assert.equal(names({ ...navi, uid: 1002 }), 'by_gid');
    assert.equal(names({ ...navi, uid: 1002, gids: [1002] }), 'by_deeper_cgroup');
    assert.equal(names({ ...navi, uid: 1002, gids: [1002], cgroup: '/system.slice/other.service' }), 'by_cgroup');
    // a sibling with a common prefix is not inside
    assert.equal(names({ ...navi, uid: 1002, gids: [1002], cgroup: '/system.slicex/a' }), undefined);
  });
  test('a ContextIdentifier group beats the same identity without one, and applies only to that context', () => {
    assert.equal(names(navi, 'maps'), 'by_uid_ctx');
    assert.equal(names(navi, 'other'), 'by_uid');
    assert.equal(names(navi, ''), 'by_uid');
    assert.equal(names({ uid: 7, gids: [7] }, 'telemetry'), 'ctx_only');
    assert.equal(names({ uid: 7, gids: [7] }, 'maps'), undefined);
    // an identity match still beats a context-only group
    assert.equal(names(navi, 'telemetry'), 'by_uid');
  });
});
