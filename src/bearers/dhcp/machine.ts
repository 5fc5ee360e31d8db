// The DHCPv4 client state machine (RFC 2131 §4.4, figure 5). Pure: time and randomness are
// inputs, packets in and out are decoded messages, effects are returned as actions.
//
//   step(state, input, now) → { state, actions }
//
// The shell (dhcp-client.ts) keeps one timer: every step ends with a `timer` action saying
// when the machine next wants to be woken (or never). A wake-up that comes early or late is
// harmless: on `timer` the machine looks at the clock and does whatever is due by then.
//
// Phases: STOPPED, WAIT-LINK (no carrier; a lease is kept until it expires), INIT (waiting
// to DISCOVER, only after repeated NAKs), SELECTING, REQUESTING, REBOOTING (RFC's
// INIT-REBOOT is the instant before it: the REQUEST for a remembered address), BOUND,
// RENEWING, REBINDING.
//
// Deviations from RFC 2131, on purpose:
// - retransmission backoff 1, 2, 4 … 64 s (± 0.5 s) instead of 4 … 64 s (± 1 s): a lost
//   first packet on a fresh link costs 1 s, not 4. RENEWING and REBINDING use the same
//   schedule (never beyond T2 / expiry) instead of "half the remaining time, at least 60 s":
//   unicast retries are cheap, and a renewal that fails for a moment should not wait minutes.
// - the first OFFER is taken; nobody waits to compare offers any more.
// - the BROADCAST flag is set whenever ciaddr is 0: until the daemon has put the address on
//   the interface, a unicast reply cannot be received (RFC 1542 §3.1.1 ties the flag to
//   exactly that situation; with ciaddr set, servers unicast to ciaddr whatever the flag).
// - consecutive NAKs back off (the first one rediscovers at once): a server that offers and
//   then refuses the same address must not drive us into a loop at wire speed.
// - no ARP probe of the offered address and no DECLINE: address conflict detection is left
//   to whoever configures the address.
import {
  BOOTREPLY,
  BOOTREQUEST,
  checkDomainName,
  type DhcpMessage,
  type DhcpOptions,
  HTYPE_ETHERNET,
  isUsableUnicast,
  type MessageType,
  maskToPrefixLen,
  normalizeMac,
  OPT,
  parseIpv4,
} from './packet.ts';

export type Phase =
  | 'STOPPED'
  | 'WAIT-LINK'
  | 'INIT'
  | 'SELECTING'
  | 'REQUESTING'
  | 'REBOOTING'
  | 'BOUND'
  | 'RENEWING'
  | 'REBINDING';

export interface Lease {
  address: string;
  prefixLen: number;
  router?: string;
  dns: string[];
  domain?: string;
  searchDomains: string[];
  mtu?: number;
  ntp: string[];
  /** seconds, after clamping; Infinity for an infinite lease */
  leaseSeconds: number;
  /** renewal (T1) and rebinding (T2) times, seconds after acquiredAt */
  t1: number;
  t2: number;
  serverId: string;
  /** ms since the epoch: when the REQUEST that got this lease was first sent (RFC 2131 §4.4.1) */
  acquiredAt: number;
  /** ms since the epoch; Infinity for an infinite lease */
  renewAt: number;
  rebindAt: number;
  expiresAt: number;
}

export type LeaseKind = 'acquired' | 'renewed' | 'changed';
export type LostReason = 'expired' | 'nak' | 'stopped' | 'released';
export type LogLevel = 'debug' | 'info' | 'warn';

/** Where a message goes. A broadcast's source is 0.0.0.0 until an address is bound (RFC 2131 §4.1). */
export type Destination = { kind: 'broadcast'; source: string } | { kind: 'unicast'; address: string };

export type Action =
  | { kind: 'send'; message: DhcpMessage; to: Destination }
  /** arm the one timer at an absolute time (ms), or cancel it */
  | { kind: 'timer'; at: number | undefined }
  /** `previous`: the lease this one replaces (renewed, changed) */
  | { kind: 'lease'; event: LeaseKind; lease: Lease; previous?: Lease }
  | { kind: 'lost'; reason: LostReason; lease: Lease }
  | { kind: 'log'; level: LogLevel; message: string };

export type Input =
  | { kind: 'start' }
  | { kind: 'packet'; message: DhcpMessage }
  | { kind: 'timer' }
  | { kind: 'stop'; release: boolean }
  | { kind: 'renew-now' }
  | { kind: 'link-down' }
  | { kind: 'link-up' };

export interface MachineConfig {
  /** lowercase colon hex, 6 bytes */
  mac: string;
  /** option 61; default: type 1 (ethernet) + MAC, as RFC 2132 §9.14 suggests */
  clientId: Uint8Array;
  hostname?: string;
  parameterRequestList: number[];
  maxMessageSize: number;
}

export interface MachineState {
  readonly config: MachineConfig;
  readonly phase: Phase;
  /** carrier, as last reported */
  readonly link: boolean;
  /** PRNG state (mulberry32): xids and jitter */
  readonly rng: number;
  readonly xid: number;
  /** start of the current exchange (ms), for `secs` */
  readonly txStart: number;
  /** messages sent in the current exchange */
  readonly attempt: number;
  /** next (re)transmission or give-up check, ms */
  readonly nextSend: number | undefined;
  /** when the first REQUEST of this exchange went out: the lease starts then */
  readonly firstRequestAt: number | undefined;
  readonly offer: { address: string; serverId: string } | undefined;
  /** address to ask for again (INIT-REBOOT, and option 50 in DISCOVER) */
  readonly requested: string | undefined;
  /** the lease the daemon holds (reported and not yet lost) */
  readonly lease: Lease | undefined;
  readonly naks: number;
}

export interface StepResult {
  state: MachineState;
  actions: Action[];
}

export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 64_000;
export const JITTER_MS = 500;
/** REQUESTs in REQUESTING / REBOOTING before giving up (the last one waits 8 s ± jitter) */
export const MAX_REQUESTS = 4;
/** Shorter leases are raised to this: below it renewals would flood the server. */
export const MIN_LEASE_SECONDS = 30;
const INFINITE_LEASE = 0xffffffff;
/** RFC 791: every IPv4 host must accept 576-byte datagrams; a smaller MTU is not credible. */
const MIN_MTU = 576;
export const DEFAULT_PARAMETER_REQUEST_LIST = [
  OPT.SUBNET_MASK,
  OPT.ROUTERS,
  OPT.DNS_SERVERS,
  OPT.DOMAIN_NAME,
  OPT.MTU,
  OPT.NTP_SERVERS,
  OPT.LEASE_TIME,
  OPT.RENEWAL_TIME,
  OPT.REBINDING_TIME,
  OPT.DOMAIN_SEARCH,
];

export interface MachineOptions {
  mac: string;
  clientId?: Uint8Array;
  hostname?: string;
  /** an address from an earlier run: start with INIT-REBOOT */
  requestedAddress?: string;
  /**
   * a lease from an earlier run that is still in use (the daemon restarted while the kernel
   * kept its address): held while INIT-REBOOT confirms it, exactly as after a carrier loss
   * (ACK renews it, NAK loses it, silence keeps it until it expires)
   */
  lease?: Lease;
  /** seed of the PRNG; tests fix it, the shell takes it from crypto */
  seed: number;
  /** carrier at start; default true */
  link?: boolean;
  parameterRequestList?: number[];
  maxMessageSize?: number;
}

export function initialState(o: MachineOptions): MachineState {
  const mac = normalizeMac(o.mac);
  if (mac === undefined || mac.split(':').length !== 6) throw new RangeError(`bad MAC address ${JSON.stringify(o.mac)}`);
  if (o.hostname !== undefined && checkDomainName(o.hostname) === undefined) {
    throw new RangeError(`bad host name ${JSON.stringify(o.hostname)}`);
  }
  // RFC 2132 §9.14: at least a type byte and one byte of identifier
  if (o.clientId !== undefined && (o.clientId.length < 2 || o.clientId.length > 255)) {
    throw new RangeError(`client identifier must be 2..255 bytes, got ${o.clientId.length}`);
  }
  if (o.requestedAddress !== undefined && !isUsableUnicast(o.requestedAddress)) {
    throw new RangeError(`bad requested address ${JSON.stringify(o.requestedAddress)}`);
  }
  if (o.lease !== undefined && !isUsableUnicast(o.lease.address)) {
    throw new RangeError(`bad lease address ${JSON.stringify(o.lease.address)}`);
  }
  const hw = mac.split(':').map((x) => Number.parseInt(x, 16));
  return {
    config: {
      mac,
      clientId: o.clientId ?? Uint8Array.from([HTYPE_ETHERNET, ...hw]),
      ...(o.hostname === undefined ? {} : { hostname: o.hostname }),
      parameterRequestList: o.parameterRequestList ?? DEFAULT_PARAMETER_REQUEST_LIST,
      maxMessageSize: o.maxMessageSize ?? 1500,
    },
    phase: 'STOPPED',
    link: o.link ?? true,
    rng: o.seed >>> 0,
    xid: 0,
    txStart: 0,
    attempt: 0,
    nextSend: undefined,
    firstRequestAt: undefined,
    offer: undefined,
    requested: o.lease?.address ?? o.requestedAddress,
    lease: o.lease,
    naks: 0,
  };
}

// ---------------------------------------------------------------------------------------
// lease arithmetic (pure helpers, exported for tests)

/** Lease, T1 and T2 in seconds, made consistent: 0 < T1 < T2 < lease, defaults 0.5 / 0.875. */
export function leaseTimes(lease: number, t1?: number, t2?: number): { lease: number; t1: number; t2: number } {
  if (lease === INFINITE_LEASE) return { lease: Infinity, t1: Infinity, t2: Infinity };
  const l = Math.max(lease, MIN_LEASE_SECONDS);
  const r2 = t2 !== undefined && t2 > 0 && t2 < l ? t2 : 0.875 * l;
  const r1 = t1 !== undefined && t1 > 0 && t1 < r2 ? t1 : 0.5 * l < r2 ? 0.5 * l : (r2 * 4) / 7;
  return { lease: l, t1: r1, t2: r2 };
}

/** Classful prefix (RFC 791) for a server that sends no subnet mask, as other clients do. */
function classfulPrefix(address: string): number {
  const first = parseIpv4(address)?.[0] ?? 0;
  return first < 128 ? 8 : first < 192 ? 16 : 24;
}

/** Two leases configure the kernel the same way (times and server aside). */
export function sameConfig(a: Lease, b: Lease): boolean {
  const eq = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    a.address === b.address &&
    a.prefixLen === b.prefixLen &&
    a.router === b.router &&
    eq(a.dns, b.dns) &&
    a.domain === b.domain &&
    eq(a.searchDomains, b.searchDomains) &&
    a.mtu === b.mtu &&
    eq(a.ntp, b.ntp)
  );
}

// ---------------------------------------------------------------------------------------
// the step function

type Draft = { -readonly [K in keyof MachineState]: MachineState[K] };

class Step {
  readonly s: Draft;
  readonly out: Action[] = [];
  constructor(
    state: MachineState,
    readonly now: number,
  ) {
    this.s = { ...state };
  }

  log(level: LogLevel, message: string): void {
    this.out.push({ kind: 'log', level, message });
  }

  random(): number {
    // mulberry32: tiny, good enough for jitter and xids, and its whole state is one number
    this.s.rng = (this.s.rng + 0x6d2b79f5) >>> 0;
    let t = this.s.rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  newExchange(phase: Phase): void {
    this.s.phase = phase;
    this.s.xid = Math.floor(this.random() * 0x100000000) >>> 0;
    this.s.txStart = this.now;
    this.s.attempt = 0;
    this.s.nextSend = undefined;
    this.s.firstRequestAt = undefined;
  }

  backoff(attempt: number): number {
    const base = Math.min(BACKOFF_FIRST_MS * 2 ** Math.max(0, attempt - 1), BACKOFF_MAX_MS);
    return base + Math.round((this.random() * 2 - 1) * JITTER_MS);
  }

  discover(): void {
    this.newExchange('SELECTING');
    this.s.offer = undefined;
    this.transmit();
  }

  /** (Re)sends the message of the current phase and schedules the next try. */
  transmit(): void {
    const s = this.s;
    const c = s.config;
    const common: DhcpOptions = {
      clientId: c.clientId,
      ...(c.hostname === undefined ? {} : { hostName: c.hostname }),
    };
    const asking: DhcpOptions = { parameterRequestList: c.parameterRequestList, maxMessageSize: c.maxMessageSize };
    let type: MessageType = 'REQUEST';
    let options: DhcpOptions;
    let ciaddr = '0.0.0.0';
    let to: Destination = { kind: 'broadcast', source: '0.0.0.0' };
    switch (s.phase) {
      case 'SELECTING':
        type = 'DISCOVER';
        options = { ...common, ...(s.requested ? { requestedAddress: s.requested } : {}), ...asking };
        break;
      case 'REQUESTING':
        options = { ...common, requestedAddress: s.offer!.address, serverId: s.offer!.serverId, ...asking };
        break;
      case 'REBOOTING':
        options = { ...common, requestedAddress: s.requested!, ...asking };
        break;
      case 'RENEWING':
        ciaddr = s.lease!.address;
        options = { ...common, ...asking };
        to = { kind: 'unicast', address: s.lease!.serverId };
        break;
      case 'REBINDING':
        ciaddr = s.lease!.address;
        options = { ...common, ...asking };
        to = { kind: 'broadcast', source: ciaddr };
        break;
      default:
        return;
    }
    if (type === 'REQUEST' && s.attempt === 0) s.firstRequestAt = this.now;
    s.attempt++;
    const message = this.message(type, ciaddr, options);
    this.out.push({ kind: 'send', message, to });
    this.log(
      s.attempt === 1 ? 'info' : 'debug',
      `${s.phase}: ${type}${s.attempt > 1 ? ` (try ${s.attempt})` : ''} xid 0x${s.xid.toString(16).padStart(8, '0')}` +
        (options.requestedAddress ? ` for ${options.requestedAddress}` : '') +
        (to.kind === 'unicast' ? ` to ${to.address}` : ''),
    );
    s.nextSend = this.now + this.backoff(s.attempt);
  }

  message(type: MessageType, ciaddr: string, options: DhcpOptions): DhcpMessage {
    return {
      op: BOOTREQUEST,
      htype: HTYPE_ETHERNET,
      hlen: 6,
      hops: 0,
      xid: this.s.xid,
      secs: Math.min(0xffff, Math.max(0, Math.floor((this.now - this.s.txStart) / 1000))),
      broadcast: ciaddr === '0.0.0.0',
      ciaddr,
      yiaddr: '0.0.0.0',
      siaddr: '0.0.0.0',
      giaddr: '0.0.0.0',
      chaddr: this.s.config.mac,
      options: { messageType: type, ...options },
    };
  }

  lose(reason: LostReason): void {
    const lease = this.s.lease;
    if (!lease) return;
    this.out.push({ kind: 'lost', reason, lease });
    this.log(reason === 'stopped' || reason === 'released' ? 'info' : 'warn', `lease ${lease.address} lost: ${reason}`);
    this.s.lease = undefined;
  }

  expire(): void {
    this.lose('expired');
    this.discover();
  }

  startRenew(phase: 'RENEWING' | 'REBINDING'): void {
    this.newExchange(phase);
    this.transmit();
  }

  /** A server said no: forget the address, rediscover (at once the first time). */
  nak(m: DhcpMessage): void {
    const why = m.options.message ? `: ${m.options.message}` : '';
    this.log('warn', `${this.s.phase}: NAK from ${m.options.serverId ?? 'unknown server'}${why}`);
    this.lose('nak');
    this.s.requested = undefined;
    this.s.naks++;
    if (this.s.naks <= 1) {
      this.discover();
      return;
    }
    this.s.phase = 'INIT';
    this.s.offer = undefined;
    this.s.nextSend = this.now + this.backoff(this.s.naks - 1);
  }

  /** Builds a lease from an ACK; undefined (and a warning) when the ACK is unusable. */
  leaseFrom(m: DhcpMessage): Lease | undefined {
    const o = m.options;
    if (!isUsableUnicast(m.yiaddr)) {
      this.log('warn', `ACK with unusable address ${m.yiaddr} ignored`);
      return undefined;
    }
    if (o.leaseTime === undefined) {
      this.log('warn', 'ACK without lease time ignored');
      return undefined;
    }
    const serverId = o.serverId ?? this.s.offer?.serverId ?? this.s.lease?.serverId;
    if (serverId === undefined || !isUsableUnicast(serverId)) {
      this.log('warn', 'ACK without usable server identifier ignored');
      return undefined;
    }
    let prefixLen = o.subnetMask === undefined ? undefined : maskToPrefixLen(o.subnetMask);
    if (prefixLen === undefined || prefixLen === 0) {
      prefixLen = classfulPrefix(m.yiaddr);
      this.log('warn', `ACK without a usable subnet mask (${o.subnetMask ?? 'none'}): assuming /${prefixLen}`);
    }
    const times = leaseTimes(o.leaseTime, o.renewalTime, o.rebindingTime);
    const start = this.s.firstRequestAt ?? this.now;
    const router = o.routers?.find(isUsableUnicast);
    const lease: Lease = {
      address: m.yiaddr,
      prefixLen,
      ...(router === undefined ? {} : { router }),
      dns: (o.dnsServers ?? []).filter(isUsableUnicast),
      ...(o.domainName === undefined ? {} : { domain: o.domainName }),
      searchDomains: o.domainSearch ?? [],
      ...(o.mtu !== undefined && o.mtu >= MIN_MTU ? { mtu: o.mtu } : {}),
      ntp: (o.ntpServers ?? []).filter(isUsableUnicast),
      leaseSeconds: times.lease,
      t1: times.t1,
      t2: times.t2,
      serverId,
      acquiredAt: start,
      renewAt: start + times.t1 * 1000,
      rebindAt: start + times.t2 * 1000,
      expiresAt: start + times.lease * 1000,
    };
    return lease;
  }

  bind(m: DhcpMessage): void {
    const lease = this.leaseFrom(m);
    if (!lease) return;
    const previous = this.s.lease;
    const event: LeaseKind = previous === undefined ? 'acquired' : sameConfig(previous, lease) ? 'renewed' : 'changed';
    this.out.push({ kind: 'lease', event, lease, ...(previous ? { previous } : {}) });
    this.log(
      'info',
      `${this.s.phase}: ACK ${lease.address}/${lease.prefixLen} from ${lease.serverId}, ${lease.leaseSeconds} s (${event})`,
    );
    const s = this.s;
    s.lease = lease;
    s.requested = lease.address;
    s.phase = 'BOUND';
    s.offer = undefined;
    s.attempt = 0;
    s.nextSend = undefined;
    s.naks = 0;
  }

  packet(m: DhcpMessage): void {
    const s = this.s;
    // other clients' broadcast replies reach us too: mismatches are normal, not worth a log
    if (m.op !== BOOTREPLY || m.xid !== s.xid || m.htype !== HTYPE_ETHERNET || normalizeMac(m.chaddr) !== s.config.mac) {
      return;
    }
    const cid = m.options.clientId;
    // RFC 6842: a server that echoes a client identifier must echo ours
    if (cid !== undefined && !bytesEqual(cid, s.config.clientId)) return;
    const type = m.options.messageType;
    switch (s.phase) {
      case 'SELECTING': {
        if (type !== 'OFFER') return;
        const serverId = m.options.serverId;
        if (!isUsableUnicast(m.yiaddr) || serverId === undefined || !isUsableUnicast(serverId)) {
          this.log('warn', `unusable OFFER (address ${m.yiaddr}, server ${serverId ?? 'none'}) ignored`);
          return;
        }
        this.log('info', `SELECTING: OFFER ${m.yiaddr} from ${serverId}`);
        s.offer = { address: m.yiaddr, serverId };
        // same xid as the DISCOVER (RFC 2131 §4.4.1), new retransmission count
        s.phase = 'REQUESTING';
        s.attempt = 0;
        this.transmit();
        return;
      }
      case 'REQUESTING': {
        // the REQUEST named its server; another server's answer is about something else
        const from = m.options.serverId;
        if (from !== undefined && from !== s.offer?.serverId) return;
        if (type === 'NAK') this.nak(m);
        else if (type === 'ACK') this.bind(m);
        return;
      }
      case 'RENEWING':
      case 'REBOOTING':
      case 'REBINDING':
        // a renewal is unicast to our server; a broadcast REQUEST may be answered by any server
        if (type === 'NAK') this.nak(m);
        else if (type === 'ACK') this.bind(m);
        return;
      default:
        return;
    }
  }

  timer(): void {
    const s = this.s;
    const now = this.now;
    const lease = s.lease;
    const due = s.nextSend !== undefined && now >= s.nextSend;
    switch (s.phase) {
      case 'INIT':
        if (due) this.discover();
        return;
      case 'SELECTING':
        if (due) this.transmit();
        return;
      case 'REQUESTING':
        if (!due) return;
        if (s.attempt < MAX_REQUESTS) this.transmit();
        else {
          this.log('warn', `REQUESTING: no answer from ${s.offer?.serverId} after ${s.attempt} REQUESTs, back to INIT`);
          this.discover();
        }
        return;
      case 'REBOOTING':
        if (lease && now >= lease.expiresAt) {
          this.expire();
          return;
        }
        if (!due) return;
        if (s.attempt < MAX_REQUESTS) this.transmit();
        else if (lease) {
          // RFC 2131 §3.2 step 3: no answer at all, keep using the unexpired lease
          this.log('info', `REBOOTING: no answer, keeping lease ${lease.address} until it expires`);
          s.phase = 'BOUND';
          s.nextSend = undefined;
          s.attempt = 0;
        } else {
          this.log('info', `REBOOTING: no answer for ${s.requested}, back to INIT`);
          this.discover();
        }
        return;
      case 'BOUND':
        if (!lease) {
          this.discover();
          return;
        }
        if (now >= lease.expiresAt) this.expire();
        else if (now >= lease.rebindAt) this.startRenew('REBINDING');
        else if (now >= lease.renewAt) this.startRenew('RENEWING');
        return;
      case 'RENEWING':
        if (!lease) {
          this.discover();
          return;
        }
        if (now >= lease.expiresAt) this.expire();
        else if (now >= lease.rebindAt) this.startRenew('REBINDING');
        else if (due) this.transmit();
        return;
      case 'REBINDING':
        if (!lease) {
          this.discover();
          return;
        }
        if (now >= lease.expiresAt) this.expire();
        else if (due) this.transmit();
        return;
      case 'WAIT-LINK':
        if (lease && now >= lease.expiresAt) this.lose('expired');
        return;
      case 'STOPPED':
        return;
    }
  }

  /** Carrier is there and we are to run: INIT-REBOOT if we know an address, else INIT. */
  begin(): void {
    const s = this.s;
    if (s.lease && this.now >= s.lease.expiresAt) this.lose('expired');
    if (s.lease) s.requested = s.lease.address;
    if (s.requested) {
      this.newExchange('REBOOTING');
      this.transmit();
    } else {
      this.discover();
    }
  }

  input(i: Input): void {
    const s = this.s;
    switch (i.kind) {
      case 'start':
        if (s.phase !== 'STOPPED') {
          this.log('debug', `start ignored in ${s.phase}`);
          return;
        }
        s.naks = 0;
        if (!s.link) {
          s.phase = 'WAIT-LINK';
          this.log('info', 'started; waiting for carrier');
          return;
        }
        this.begin();
        return;
      case 'packet':
        this.packet(i.message);
        return;
      case 'timer':
        this.timer();
        return;
      case 'stop': {
        if (s.phase === 'STOPPED') return;
        const lease = s.lease;
        const canRelease = lease && (s.phase === 'BOUND' || s.phase === 'RENEWING' || s.phase === 'REBINDING');
        if (i.release && canRelease) {
          s.xid = Math.floor(this.random() * 0x100000000) >>> 0;
          s.txStart = this.now;
          const message = this.message('RELEASE', lease.address, {
            serverId: lease.serverId,
            clientId: s.config.clientId,
          });
          this.out.push({ kind: 'send', message, to: { kind: 'unicast', address: lease.serverId } });
          this.log('info', `RELEASE ${lease.address} to ${lease.serverId}`);
          this.lose('released');
          // a released address is not ours to ask for again
          s.requested = undefined;
        } else {
          this.lose('stopped');
        }
        s.phase = 'STOPPED';
        s.offer = undefined;
        s.nextSend = undefined;
        s.attempt = 0;
        return;
      }
      case 'renew-now':
        switch (s.phase) {
          case 'BOUND':
            this.startRenew('RENEWING');
            return;
          case 'RENEWING':
          case 'REBINDING':
          case 'REQUESTING':
          case 'REBOOTING':
            // resend now, with a fresh retransmission count
            s.attempt = 0;
            this.transmit();
            return;
          case 'INIT':
          case 'SELECTING':
            this.discover();
            return;
          default:
            this.log('debug', `renew-now ignored in ${s.phase}`);
            return;
        }
      case 'link-down':
        s.link = false;
        if (s.phase === 'STOPPED' || s.phase === 'WAIT-LINK') return;
        this.log('info', `carrier lost in ${s.phase}${s.lease ? `; keeping lease ${s.lease.address}` : ''}`);
        s.phase = 'WAIT-LINK';
        s.offer = undefined;
        s.nextSend = undefined;
        s.attempt = 0;
        return;
      case 'link-up':
        s.link = true;
        if (s.phase !== 'WAIT-LINK') return;
        this.log('info', 'carrier back');
        s.naks = 0;
        this.begin();
        return;
    }
  }

  /** The one timer the machine wants now. */
  wake(): number | undefined {
    const s = this.s;
    const l = s.lease;
    let at: number;
    switch (s.phase) {
      case 'STOPPED':
        return undefined;
      case 'WAIT-LINK':
        at = l ? l.expiresAt : Infinity;
        break;
      case 'BOUND':
        at = l ? Math.min(l.renewAt, l.rebindAt, l.expiresAt) : this.now;
        break;
      case 'RENEWING':
        at = Math.min(s.nextSend ?? Infinity, l ? Math.min(l.rebindAt, l.expiresAt) : this.now);
        break;
      case 'REBINDING':
      case 'REBOOTING':
        at = Math.min(s.nextSend ?? Infinity, l ? l.expiresAt : Infinity);
        break;
      default:
        at = s.nextSend ?? Infinity;
    }
    return Number.isFinite(at) ? at : undefined;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function step(state: MachineState, input: Input, now: number): StepResult {
  const st = new Step(state, now);
  st.input(input);
  st.out.push({ kind: 'timer', at: st.wake() });
  return { state: st.s, actions: st.out };
}
