// The ISP-side veths of a lab, set up or down with our own netlink requests (the device
// side gets or loses carrier at once), and which uplinks are "urgent" for the kernel.
//
// The kernel's linkwatch treats a carrier change of a veth whose iflink equals its own
// ifindex (eth0 ↔ gw0 are both index 2 in their namespaces) like a physical NIC's: not
// urgent, held back until a second after the previous non-urgent event of ANY device on the
// machine, other labs included. That is the kernel's rate limit, not a daemon's latency: a
// benchmark toggles an uplink whose two sides have different ifindexes (see bench/core.ts).
import { Rtnetlink } from '../../src/kernel/rtnetlink/client.ts';
import type { LabInfo } from '../../src/lab/topology.ts';

export class IspLinks {
  private constructor(
    private readonly links: { rtnl: Rtnetlink; index: number }[],
    /** uplink i's device-side ifindex */
    private readonly deviceIndex: (number | undefined)[],
  ) {}

  static async open(lab: LabInfo): Promise<IspLinks> {
    const links: { rtnl: Rtnetlink; index: number }[] = [];
    const opened: Rtnetlink[] = [];
    try {
      for (const u of lab.uplinks) {
        const rtnl = Rtnetlink.open({ netns: u.ispNetns });
        opened.push(rtnl);
        const link = (await rtnl.dumpLinks()).find((l) => l.name === u.ispIfname);
        if (link === undefined) throw new Error(`${u.ispIfname} not found in ${u.ispNetns}`);
        links.push({ rtnl, index: link.index });
      }
      const dev = Rtnetlink.open({ netns: lab.device.netns });
      let devLinks: Awaited<ReturnType<Rtnetlink['dumpLinks']>>;
      try {
        devLinks = await dev.dumpLinks();
      } finally {
        dev.close();
      }
      return new IspLinks(
        links,
        lab.uplinks.map((u) => devLinks.find((l) => l.name === u.ifname)?.index),
      );
    } catch (err) {
      for (const r of opened) r.close();
      throw err;
    }
  }

  /** Uplinks whose carrier changes reach the device namespace at once (see above). */
  urgent(): number[] {
    const out: number[] = [];
    this.links.forEach((l, i) => {
      const d = this.deviceIndex[i];
      if (d !== undefined && d !== l.index) out.push(i);
    });
    return out;
  }

  /** Sets uplink i's ISP side up or down; resolves to t0, taken right before the request went out. */
  async set(i: number, up: boolean): Promise<number> {
    const l = this.links[i];
    if (l === undefined) throw new Error(`no uplink ${i}`);
    const t0 = performance.now();
    await l.rtnl.applyOne({ op: 'set', link: { index: l.index, up } });
    return t0;
  }

  close(): void {
    for (const l of this.links) l.rtnl.close();
  }
}
