// rtnetlink requests: dumps and changes with acknowledgements, pipelined in bounded
// windows (many messages per datagram, one ack each), serialised per socket.
import { MessageWriter, forEachMessage, readCString, forEachAttr } from '../netlink/codec.ts';
import {
  AF_UNSPEC,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_MSG,
  RTM_DELADDR,
  RTM_DELROUTE,
  RTM_DELRULE,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_GETRULE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  IFF_UP,
  RTM_NEWROUTE,
  RTM_NEWRULE,
} from '../netlink/constants.ts';
import { NetlinkError } from '../netlink/errors.ts';
import { NetlinkSocket } from '../netlink/socket.ts';
import { type AddressSpec, addressDumpHeader, parseAddress, writeAddress } from './address.ts';
import { linkDumpHeader, parseLink } from './link.ts';
import { parseRoute, routeDumpHeader, writeRoute } from './route.ts';
import { parseRule, ruleDumpHeader, writeRule } from './rule.ts';
import type { Address, Link, Route, Rule } from './types.ts';

export type RtOp =
  | { op: 'add' | 'replace' | 'delete'; route: Route }
  | { op: 'add' | 'delete'; rule: Rule }
  | { op: 'add' | 'replace' | 'delete'; address: AddressSpec }
  /** administrative state of a link (IFF_UP) */
  | { op: 'set'; link: { index: number; up: boolean } };

export type RtOpResult = { ok: true } | { ok: false; error: NetlinkError };

export interface RtnetlinkOptions {
  netns?: string;
  /** requests in flight at once (one datagram); bounds the acks the socket must hold */
  window?: number;
}

const RECV_BUF = 1 << 18;
const MAX_DUMP_RETRIES = 5;

export class Rtnetlink {
  private readonly sock: NetlinkSocket;
  private readonly window: number;
  private readonly rbuf = Buffer.allocUnsafe(RECV_BUF);
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(sock: NetlinkSocket, window: number) {
    this.sock = sock;
    this.window = window;
  }

  static open(opts: RtnetlinkOptions = {}): Rtnetlink {
    const sock = NetlinkSocket.open({ netns: opts.netns, flags: [NETLINK_CAP_ACK, NETLINK_EXT_ACK], rcvbuf: 8 << 20 });
    return new Rtnetlink(sock, Math.max(1, Math.min(opts.window ?? 256, 4096)));
  }

  close(): void {
    this.sock.close();
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  /** Runs `fn` after every earlier request on this socket has finished. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  dumpLinks(): Promise<Link[]> {
    return this.dump(RTM_GETLINK, (w) => linkDumpHeader(w), parseLink);
  }
  dumpAddresses(family: number = AF_UNSPEC): Promise<Address[]> {
    return this.dump(RTM_GETADDR, (w) => addressDumpHeader(w, family), parseAddress);
  }
  /** All tables; cached (cloned) IPv6 routes are left out as `ip route` does. */
  async dumpRoutes(family: number = AF_UNSPEC): Promise<Route[]> {
    return (await this.dump(RTM_GETROUTE, (w) => routeDumpHeader(w, family), parseRoute)).filter((r) => (r.flags & 0x200) === 0);
  }
  dumpRules(family: number = AF_UNSPEC): Promise<Rule[]> {
    return this.dump(RTM_GETRULE, (w) => ruleDumpHeader(w, family), parseRule);
  }

  private dump<T>(type: number, header: (w: MessageWriter) => void, parse: (b: Buffer, off: number, end: number) => T): Promise<T[]> {
    return this.serial(async () => {
      for (let attempt = 0; ; attempt++) {
        const seq = this.nextSeq();
        const w = new MessageWriter(type, NLM_F_REQUEST | NLM_F_DUMP, seq, 64);
        header(w);
        this.sock.send(w.finish());
        const out: T[] = [];
        let interrupted = false;
        let failure: NetlinkError | undefined;
        let done = false;
        while (!done) {
          await this.readSome((h, off) => {
            if (h.seq !== seq) return;
            if (h.flags & NLM_F_DUMP_INTR) interrupted = true;
            if (h.type === NLMSG_DONE) done = true;
            else if (h.type === NLMSG_ERROR) {
              const errno = this.rbuf.readInt32LE(off);
              if (errno !== 0) failure = new NetlinkError(errno, `dump ${type}`);
              done = true;
            } else if (h.type === type - 2) {
              // RTM_NEWx = RTM_GETx - 2
              out.push(parse(this.rbuf, off, off + h.len - NLMSG_HDRLEN));
            }
          });
        }
        if (failure) throw failure;
        // The kernel marks a dump that raced with a change; it must be read again.
        if (!interrupted || attempt >= MAX_DUMP_RETRIES) return out;
      }
    });
  }

  /**
   * Reads what the socket holds and hands each message to `each`; if nothing is queued,
   * waits until something is. Errors of the socket itself (ENOBUFS) are thrown.
   */
  private async readSome(each: (h: { type: number; flags: number; seq: number; len: number }, payloadOff: number) => void): Promise<void> {
    for (;;) {
      const r = this.sock.recv(this.rbuf);
      if (r.kind === 'data') {
        forEachMessage(this.rbuf, r.length, each);
        return;
      }
      if (r.kind === 'error') throw new NetlinkError(r.errno, 'recv(rtnetlink)');
      if (this.sock.isClosed) throw new Error('rtnetlink socket closed');
      await new Promise<void>((resolve) => this.sock.waitReadable(resolve));
    }
  }

  /**
   * Applies `ops` in windows of at most `window` requests, each window sent as one
   * datagram. Results come back in order; one failure does not stop the others.
   */
  apply(ops: readonly RtOp[]): Promise<RtOpResult[]> {
    return this.serial(async () => {
      const results: RtOpResult[] = new Array(ops.length);
      for (let start = 0; start < ops.length; start += this.window) {
        const end = Math.min(ops.length, start + this.window);
        const bySeq = new Map<number, number>();
        const parts: Buffer[] = [];
        for (let i = start; i < end; i++) {
          const seq = this.nextSeq();
          bySeq.set(seq, i);
          parts.push(encodeOp(ops[i]!, seq));
        }
        this.sock.send(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
        while (bySeq.size > 0) {
          await this.readSome((h, off) => {
            if (h.type !== NLMSG_ERROR) return;
            const i = bySeq.get(h.seq);
            if (i === undefined) return;
            bySeq.delete(h.seq);
            const errno = this.rbuf.readInt32LE(off);
            results[i] = errno === 0 ? { ok: true } : { ok: false, error: new NetlinkError(errno, describeOp(ops[i]!), this.extack(h, off)) };
          });
        }
      }
      return results;
    });
  }

  private extack(h: { flags: number; len: number }, off: number): string | undefined {
    if (!(h.flags & NLM_F_ACK_TLVS)) return undefined;
    const inner = this.rbuf.readUInt32LE(off + 4);
    const tlvStart = off + 4 + (h.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : inner);
    let msg: string | undefined;
    forEachAttr(this.rbuf, tlvStart, off + h.len - NLMSG_HDRLEN, (t, at, len) => {
      if (t === NLMSGERR_ATTR_MSG) msg = readCString(this.rbuf, at, len);
    });
    return msg;
  }

  /** Applies one op and throws its NetlinkError on failure. */
  async applyOne(op: RtOp): Promise<void> {
    const [r] = await this.apply([op]);
    if (r && !r.ok) throw r.error;
  }
}

function encodeOp(op: RtOp, seq: number): Buffer {
  const base = NLM_F_REQUEST | NLM_F_ACK;
  const flags = op.op === 'add' ? base | NLM_F_CREATE | NLM_F_EXCL : op.op === 'replace' ? base | NLM_F_CREATE | NLM_F_REPLACE : base;
  if ('route' in op) {
    const w = new MessageWriter(op.op === 'delete' ? RTM_DELROUTE : RTM_NEWROUTE, flags, seq, 128);
    writeRoute(w, op.route, op.op === 'delete');
    return w.finish();
  }
  if ('rule' in op) {
    const w = new MessageWriter(op.op === 'delete' ? RTM_DELRULE : RTM_NEWRULE, flags, seq, 128);
    writeRule(w, op.rule);
    return w.finish();
  }
  if ('link' in op) {
    const w = new MessageWriter(RTM_NEWLINK, base, seq, 64);
    const h = w.struct(16);
    h.writeInt32LE(op.link.index, 4);
    h.writeUInt32LE(op.link.up ? IFF_UP : 0, 8);
    h.writeUInt32LE(IFF_UP, 12); // change mask: only IFF_UP
    return w.finish();
  }
  const w = new MessageWriter(op.op === 'delete' ? RTM_DELADDR : RTM_NEWADDR, flags, seq, 128);
  writeAddress(w, op.address);
  return w.finish();
}

export function describeOp(op: RtOp): string {
  if ('route' in op) {
    const r = op.route;
    return `${op.op} route ${r.dstLen === 0 ? 'default' : `${r.dst}/${r.dstLen}`} table ${r.table}${r.gateway ? ` via ${r.gateway}` : ''}${r.oif ? ` oif ${r.oif}` : ''} metric ${r.priority}`;
  }
  if ('rule' in op) {
    const r = op.rule;
    return `${op.op} rule ${r.priority}${r.fwmark !== undefined ? ` fwmark 0x${r.fwmark.toString(16)}` : ''}${r.src ? ` from ${r.src}/${r.srcLen}` : ''} table ${r.table}`;
  }
  if ('link' in op) return `set link ${op.link.index} ${op.link.up ? 'up' : 'down'}`;
  return `${op.op} address ${op.address.address}/${op.address.prefixLen} dev ${op.address.index}`;
}
