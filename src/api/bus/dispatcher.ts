// Routes method calls on the bus to our ObjectTree: checks the signature (a wrong one is
// UnknownMethod, as ConnMan answers — never a crash), runs the handler, replies with its result or its
// ApiError, and answers Introspect. Every failure becomes a well-formed D-Bus error.
import dbus, { type Message, type MessageBus } from 'dbus-next';
import { ApiError } from './errors.ts';
import { holdWrites } from './wire-encoder.ts';
import type { ObjectTree } from './object-tree.ts';

const METHOD_CALL = 1;
// dbus-next's typings declare newError(msg: string, …); at run time it takes the call it answers
const newError = dbus.Message.newError as unknown as (call: Message, name: string, text?: string) => Message;

export interface DispatcherOptions {
  /** where unexpected handler failures are reported (bugs: the caller gets net.connman.Error.Failed) */
  onInternalError?: (err: unknown, msg: Message) => void;
  /** after a method's reply is written: work the call started that must follow its reply */
  afterReply?: () => void;
}

export function attachDispatcher(bus: MessageBus, tree: ObjectTree, opts: DispatcherOptions = {}): () => void {
  const reply = (msg: Message, out: Message): void => {
    if (!(msg.flags & 0x1)) bus.send(out); // unless NO_REPLY_EXPECTED
    opts.afterReply?.();
  };
  const fail = (msg: Message, e: unknown): void => {
    if (e instanceof ApiError) reply(msg, newError(msg, e.dbusName, e.message));
    else {
      opts.onInternalError?.(e, msg);
      reply(msg, newError(msg, 'net.connman.Error.Failed', 'internal error'));
    }
  };
  const handler = (msg: Message): boolean => {
    if ((msg.type as number) !== METHOD_CALL) return false;
    holdWrites(bus);
    const path = msg.path;
    if (msg.interface === 'org.freedesktop.DBus.Introspectable' && msg.member === 'Introspect') {
      if (!tree.has(path) && tree.children(path).length === 0) return false;
      reply(msg, dbus.Message.newMethodReturn(msg, 's', [tree.introspect(path)]));
      return true;
    }
    const obj = tree.get(path);
    if (!obj) {
      // not ours: dbus-next answers Peer/Properties for its own exports, else UnknownMethod
      if (msg.interface?.startsWith('net.connman.')) {
        reply(msg, newError(msg, 'org.freedesktop.DBus.Error.UnknownObject', `no object at ${path}`));
        return true;
      }
      return false;
    }
    const m = tree.method(path, msg.interface || undefined, msg.member);
    if (!m) {
      reply(msg, newError(msg, 'org.freedesktop.DBus.Error.UnknownMethod', `no method ${msg.interface ?? ''}.${msg.member} at ${path}`));
      return true;
    }
    if ((msg.signature ?? '') !== m.in) {
      // what ConnMan (gdbus/libdbus) answers: the method does not exist with that signature
      reply(msg, newError(msg, 'org.freedesktop.DBus.Error.UnknownMethod', `Method "${msg.member}" with signature "${msg.signature ?? ''}" on interface "${msg.interface ?? ''}" doesn't exist (expected "${m.in}")`));
      return true;
    }
    try {
      const r = m.handler({ sender: msg.sender, msg, args: msg.body ?? [] });
      if (r instanceof Promise) r.then((body) => reply(msg, dbus.Message.newMethodReturn(msg, m.out, body)), (e: unknown) => fail(msg, e));
      else reply(msg, dbus.Message.newMethodReturn(msg, m.out, r));
    } catch (e) {
      fail(msg, e);
    }
    return true;
  };
  bus.addMethodHandler(handler);
  return () => bus.removeMethodHandler(handler);
}

export function emitSignal(bus: MessageBus, path: string, iface: string, name: string, signature: string, body: unknown[]): void {
  bus.send(dbus.Message.newSignal(path, iface, name, signature, body));
}
