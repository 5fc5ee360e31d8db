// ConnMan provisioning files (config-format.txt): [service_*] groups with Type, MAC,
// IPv4 (off | dhcp | address/netmask/gateway), IPv6 (off | auto | address/prefix/gateway),
// Nameservers, SearchDomains, Timeservers. Pure.
import { checkIpv4, checkIpv6, prefixToNetmask } from '../engine/engine.ts';
import type { Ipv4Config, Ipv6Config, ProvisionedService } from '../engine/types.ts';
import { list, parseKeyFile } from './keyfile.ts';

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function parseProvisioning(text: string, file: string): { services: ProvisionedService[]; warnings: string[] } {
  const kf = parseKeyFile(text);
  const warnings = kf.errors.map((e) => `${file}: ${e}`);
  const services: ProvisionedService[] = [];
  for (const [group, keys] of kf.groups) {
    if (!group.startsWith('service_')) continue;
    const bad = (m: string): void => {
      warnings.push(`${file} [${group}]: ${m}; section ignored`);
    };
    const type = keys.get('Type');
    if (type !== 'ethernet') {
      bad(`Type ${JSON.stringify(type ?? '')} is not supported (ethernet only)`);
      continue;
    }
    const p: ProvisionedService = { name: group, type: 'ethernet' };
    const mac = keys.get('MAC')?.toLowerCase();
    if (mac !== undefined) {
      if (!MAC.test(mac)) {
        bad(`MAC ${mac} is not a MAC address`);
        continue;
      }
      p.mac = mac;
    }
    const v4 = keys.get('IPv4');
    if (v4 !== undefined) {
      const c = ipv4From(v4);
      const e = c ? checkIpv4(c) : 'IPv4 must be off, dhcp or address/netmask[/gateway]';
      if (!c || e) {
        bad(e ?? 'bad IPv4');
        continue;
      }
      p.ipv4 = c;
    }
    const v6 = keys.get('IPv6');
    if (v6 !== undefined) {
      const c = ipv6From(v6);
      const e = c ? checkIpv6(c) : 'IPv6 must be off, auto or address/prefix[/gateway]';
      if (!c || e) {
        bad(e ?? 'bad IPv6');
        continue;
      }
      p.ipv6 = c;
    }
    if (keys.has('Nameservers')) p.nameservers = list(keys.get('Nameservers'));
    if (keys.has('SearchDomains')) p.domains = list(keys.get('SearchDomains'));
    if (keys.has('Timeservers')) p.timeservers = list(keys.get('Timeservers'));
    services.push(p);
  }
  return { services, warnings };
}

function ipv4From(v: string): Ipv4Config | undefined {
  if (v === 'off' || v === 'dhcp') return { method: v };
  const [address, mask, gateway] = v.split('/');
  if (!address || !mask) return undefined;
  const netmask = /^\d{1,2}$/.test(mask) ? prefixToNetmask(Number(mask)) : mask;
  return { method: 'manual', address, netmask, ...(gateway ? { gateway } : {}) };
}

function ipv6From(v: string): Ipv6Config | undefined {
  if (v === 'off' || v === 'auto') return v === 'off' ? { method: 'off' } : { method: 'auto', privacy: 'disabled' };
  const [address, prefix, gateway] = v.split('/');
  if (!address || !prefix || !/^\d{1,3}$/.test(prefix)) return undefined;
  return { method: 'manual', address, prefixLength: Number(prefix), ...(gateway ? { gateway } : {}) };
}
