// When did the kernel tell the device namespace that an uplink got or lost carrier? A
// KernelMirror in that namespace timestamps every change of IFF_LOWER_UP as it arrives, so
// a benchmark can see the kernel's part of "t0 → D-Bus signal" (t0 → RTM_NEWLINK, which
// linkwatch may hold back for up to a second). The timestamp is taken when this process
// gets to read the message, so it includes this process's own delay: an upper bound, not
// a split point (when the daemon's signal is read first, it is later than the signal).
import { type KernelMirror, openKernelMirror } from '../../src/kernel/kernel-mirror.ts';

export interface CarrierEvent {
  /** performance.now() when the notification reached this process */
  t: number;
  ifname: string;
  index: number;
  carrier: boolean;
}

export class LinkWatch {
  readonly events: CarrierEvent[] = [];
  private readonly last = new Map<number, boolean>();

  private constructor(private readonly mirror: KernelMirror) {
    for (const l of mirror.state.links.values()) this.last.set(l.index, l.lowerUp);
    mirror.onEvent((ev) => {
      const t = performance.now();
      if (ev.kind !== 'link' || ev.op !== 'new') return;
      const { index, name, lowerUp } = ev.link;
      if (this.last.get(index) === lowerUp) return;
      this.last.set(index, lowerUp);
      this.events.push({ t, ifname: name, index, carrier: lowerUp });
    });
  }

  static async open(netns: string): Promise<LinkWatch> {
    return new LinkWatch(await openKernelMirror({ netns }));
  }

  /** ifindex of a device-side interface. */
  indexOf(ifname: string): number | undefined {
    return this.mirror.state.linkByName(ifname)?.index;
  }

  find(from: number, ifname: string, carrier: boolean): CarrierEvent | undefined {
    for (let i = from; i < this.events.length; i++) {
      const e = this.events[i] as CarrierEvent;
      if (e.ifname === ifname && e.carrier === carrier) return e;
    }
    return undefined;
  }

  /** Waits (polling: events are rare and this is not on a measured path) for such an event. */
  async next(from: number, ifname: string, carrier: boolean, timeoutMs: number): Promise<CarrierEvent | undefined> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const e = this.find(from, ifname, carrier);
      if (e !== undefined || performance.now() > end) return e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(): void {
    this.mirror.close();
  }
}
