// Routes method calls on the bus to our ObjectTree: checks the signature (a wrong one is
// UnknownMethod, as ConnMan answers — never a crash), runs the handler, replies with its result or its
// ApiError, and answers Introspect. Every failure becomes a well-formed D-Bus error.
import type { Message } from 'dbus-next';
import type { BusConnection } from './bus-connection.ts';
import { ApiError } from './errors.ts';
import { METHOD_CALL } from './message-type.ts';
import type { ObjectTree } from './object-tree.ts';

export interface DispatcherOptions {
  /** where unexpected handler failures are reported (bugs: the caller gets net.connman.Error.Failed) */
  onInternalError?: (err: unknown, msg: Message) => void;
  /** after a method's reply is written: work the call started that must follow its reply */
  afterReply?: () => void;
}

export function attachDispatcher(bus: BusConnection, tree: ObjectTree, opts: DispatcherOptions = {}): () => void {
  const reply = (msg: Message, signature: string, body: readonly unknown[]): void => {
    bus.reply(msg, signature, body);
    opts.afterReply?.();
  };
  const error = (msg: Message, name: string, text: string): void => {
    bus.replyError(msg, name, text);
    opts.afterReply?.();
  };
  const fail = (msg: Message, e: unknown): void => {
    if (e instanceof ApiError) error(msg, e.dbusName, e.message);
    else {
      opts.onInternalError?.(e, msg);
      error(msg, 'net.connman.Error.Failed', 'internal error');
    }
  };
  const handler = (msg: Message): boolean => {
    if ((msg.type as number) !== METHOD_CALL) return false;
    bus.hold();
    const path = msg.path;
    if (msg.interface === 'org.freedesktop.DBus.Introspectable' && msg.member === 'Introspect') {
      if (!tree.has(path) && tree.children(path).length === 0) return false;
      reply(msg, 's', [tree.introspect(path)]);
      return true;
    }
    const obj = tree.get(path);
    if (!obj) {
      // not ours (the connection says UnknownObject); net.connman ones are answered here, as ConnMan's
      if (msg.interface?.startsWith('net.connman.')) {
        error(msg, 'org.freedesktop.DBus.Error.UnknownObject', `no object at ${path}`);
        return true;
      }
      return false;
    }
    const m = tree.method(path, msg.interface || undefined, msg.member);
    if (!m) {
      error(msg, 'org.freedesktop.DBus.Error.UnknownMethod', `no method ${msg.interface ?? ''}.${msg.member} at ${path}`);
      return true;
    }
    if ((msg.signature ?? '') !== m.in) {
      // what ConnMan (gdbus/libdbus) answers: the method does not exist with that signature
      error(msg, 'org.freedesktop.DBus.Error.UnknownMethod', `Method "${msg.member}" with signature "${msg.signature ?? ''}" on interface "${msg.interface ?? ''}" doesn't exist (expected "${m.in}")`);
      return true;
    }
    try {
      const r = m.handler({ sender: msg.sender, msg, args: msg.body ?? [] });
      if (r instanceof Promise)
        r.then((body) => reply(msg, m.out, body)).catch((e: unknown) => {
          try {
            fail(msg, e);
          } catch {
            // the connection has ended: nobody to answer
          }
        });
      else reply(msg, m.out, r);
    } catch (e) {
      fail(msg, e);
    }
    return true;
  };
  bus.addMethodHandler(handler);
  return () => bus.removeMethodHandler(handler);
}
