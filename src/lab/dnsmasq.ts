// The argv of one ISP's dnsmasq: DHCPv4, IPv6 router advertisements (SLAAC) and a DNS that
// answers every name with the internet's addresses. Pure.
import type { Topology, Uplink, UplinkFiles } from './topology.ts';

/** Seconds between unsolicited RAs and the router lifetime they announce. */
export const RA_INTERVAL_SECONDS = 10;
export const RA_ROUTER_LIFETIME_SECONDS = 1800;

export function dnsmasqArgv(t: Topology, u: Uplink, files: UplinkFiles): string[] {
  const v6net = u.prefix6.slice(0, u.prefix6.indexOf('/'));
  return [
    'dnsmasq',
    // stay the process we spawned, so its pid is the one in our pid file
    '--keep-in-foreground',
    // ignore /etc/dnsmasq.conf and never write /run/dnsmasq.pid (several labs run at once)
    '--conf-file=/dev/null',
    '--pid-file',
    '--user=root',
    '--group=root',
    '--no-resolv',
    '--no-hosts',
    `--interface=${u.ispIfname}`,
    '--bind-interfaces',
    '--except-interface=lo',
    `--address=/#/${t.internet.ipv4}`,
    `--address=/#/${t.internet.ipv6}`,
    '--dhcp-authoritative',
    // the lab owns the segment: no address can be in use behind dnsmasq's back, and its
    // ping-before-offer delays every first OFFER by 3 s
    '--no-ping',
    `--dhcp-range=${u.dhcpPool4.start},${u.dhcpPool4.end},${u.netmask4},${u.leaseSeconds}`,
    `--dhcp-option=option:router,${u.gateway4}`,
    `--dhcp-option=option:dns-server,${u.gateway4}`,
    '--enable-ra',
    `--dhcp-range=${v6net},ra-only,64`,
    `--ra-param=${u.ispIfname},${RA_INTERVAL_SECONDS},${RA_ROUTER_LIFETIME_SECONDS}`,
    `--dhcp-leasefile=${files.leaseFile}`,
    '--log-dhcp',
    `--log-facility=${files.dnsmasqLog}`,
  ];
}
