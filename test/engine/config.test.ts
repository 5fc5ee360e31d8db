// Configuration and provisioning files: ConnMan's formats, bad input reported and ignored.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { defaultConfig, parseConfig } from '../../src/daemon/config.ts';
import { parseProvisioning } from '../../src/daemon/provisioning.ts';
import { applyProvisioning, createState, defaultSettings, reduce } from '../../src/engine/engine.ts';

test('main.conf: ConnMan keys and ours; unknown keys and bad values are reported, defaults kept', () => {
  const c = parseConfig(`
[General]
PreferredTechnologies = wifi, ethernet, warp
NetworkInterfaceBlacklist = eth9,usb
EnableOnlineCheck = false
OnlineCheckIPv4URL = ftp://nope
OnlineCheckMaxInterval = 3
Frobnicate = 1
[netsession]
ResolvConf = /tmp/x/resolv.conf
RulePriorityBase = 20000
TableBase = 300000
DhcpFailureTimeout = banana
`);
  assert.deepEqual(c.engine.preferredTechnologies, ['wifi', 'ethernet']);
  assert.deepEqual(c.engine.interfaceBlacklist, ['eth9', 'usb']);
  assert.equal(c.engine.onlineCheck.enabled, false);
  assert.equal(c.engine.onlineCheck.ipv4Url, defaultConfig().engine.onlineCheck.ipv4Url);
  assert.equal(c.engine.onlineCheck.maxInterval, 3);
  assert.equal(c.resolvConf, '/tmp/x/resolv.conf');
  assert.deepEqual(c.ownership.rulePriorities, { min: 20000, max: 20999 });
  assert.equal(c.layout.sourceRulePriority, 20950);
  assert.equal(c.engine.tables.min, 300000);
  assert.equal(c.engine.dhcpFailureTimeout, 30);
  for (const w of [/warp/, /Frobnicate/, /ftp:/]) assert.ok(c.warnings.some((x) => w.test(x)), `warning for ${w}`);
});

test('the shipped example configuration parses without warnings', () => {
  const c = parseConfig(readFileSync(new URL('../../packaging/main.conf.example', import.meta.url), 'utf8'));
  assert.deepEqual(c.warnings, []);
});

test('provisioning: a file fixes a service by MAC; bad sections are reported and skipped', () => {
  const r = parseProvisioning(
    `
[global]
Name = lab
[service_uplink]
Type = ethernet
MAC = 02:00:00:00:00:01
IPv4 = 192.0.2.77/24/192.0.2.1
IPv6 = off
Nameservers = 192.0.2.53
SearchDomains = example.test
[service_bad]
Type = ethernet
IPv4 = 192.0.2.77/255.0.255.0
[service_wifi]
Type = wifi
`,
    'lab.config',
  );
  assert.equal(r.services.length, 1);
  assert.equal(r.warnings.length, 2);
  const p = r.services[0]!;
  assert.deepEqual(p.ipv4, { method: 'manual', address: '192.0.2.77', netmask: '255.255.255.0', gateway: '192.0.2.1' });
  const cfg = defaultConfig().engine;
  cfg.provisioning = r.services;
  const s = applyProvisioning(cfg, defaultSettings(1), '02:00:00:00:00:01');
  assert.equal(s.immutable, true);
  assert.deepEqual(s.nameservers, ['192.0.2.53']);
  assert.equal(applyProvisioning(cfg, defaultSettings(1), '02:00:00:00:00:02').immutable, false);
  // the engine applies it when the device appears, and reports the manual address at once
  const st = reduce(createState(cfg), { kind: 'link', link: { ifindex: 5, ifname: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, carrier: true } }, 0);
  const svc = [...st.services.values()][0]!;
  assert.equal(svc.state, 'ready');
  assert.equal(svc.settings.immutable, true);
});
