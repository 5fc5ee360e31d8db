// The kernel layer's public surface.
export * from './netlink/constants.ts';
export { NetlinkError, errnoName } from './netlink/errors.ts';
export { inNetns } from './sys/netns.ts';
export { canonicalAddress } from './netlink/codec.ts';
export type { Address, Link, Nexthop, OperState, Route, Rule } from './rtnetlink/types.ts';
export { Rtnetlink, type RtOp, type RtOpResult } from './rtnetlink/client.ts';
export { type RouteSpec, normalizeRoute, routeKey } from './rtnetlink/route.ts';
export { type RuleSpec, normalizeRule, ruleKey } from './rtnetlink/rule.ts';
export { addressKey, type AddressSpec } from './rtnetlink/address.ts';
export type { RtEvent, ObjectClass } from './rtnetlink/events.ts';
export { ObservedState } from './observed-state.ts';
export { KernelMirror, openKernelMirror, type KernelMirrorOptions } from './kernel-mirror.ts';
export type { NftTableModel, NftSet, NftMap, NftChain, NftValue } from './nft/model.ts';
export { Nft, NftError } from './nft/nft.ts';
export type { ObservedNftTable, Counter } from './nft/observed.ts';
export { DEFAULT_OWNERSHIP, type Ownership, ownsRoute, ownsRule } from './reconciler/ownership.ts';
export { Reconciler, type DesiredKernelState, type ReconcileReport } from './reconciler/reconciler.ts';
