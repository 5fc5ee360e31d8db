// net.connman.Service: one object per service, /net/connman/service/<id>.
import type { Command } from '../../engine/engine.ts';
import { ApiError } from '../bus/errors.ts';
import type { InterfaceSpec } from '../bus/object-tree.ts';
import type { Controller } from './controller.ts';
import { SERVICE_PATH, serviceClearProperty, serviceProperties, serviceSetProperty } from './properties.ts';

export const SERVICE_IFACE = 'net.connman.Service';
/** ConnMan gives a connection attempt 45 s */
const CONNECT_TIMEOUT_MS = 45_000;

export function run(ctl: Controller, cmd: Command): [] {
  const e = ctl.execute(cmd);
  if (e) throw new ApiError(e.name, e.message);
  return [];
}

function targetId(path: unknown): string {
  if (typeof path !== 'string' || !path.startsWith(SERVICE_PATH)) throw new ApiError('InvalidArguments', 'not a service object path');
  return path.slice(SERVICE_PATH.length);
}

export function serviceInterface(ctl: Controller, id: string): InterfaceSpec {
  const current = () => {
    const s = ctl.state().services.get(id);
    if (!s) throw new ApiError('NotFound', `service ${id} is gone`);
    return s;
  };
  return {
    name: SERVICE_IFACE,
    methods: {
      GetProperties: { in: '', out: 'a{sv}', handler: () => [serviceProperties(current(), ctl.now())] },
      SetProperty: { in: 'sv', out: '', argNames: ['name', 'value'], handler: ({ args }) => run(ctl, serviceSetProperty(id, args[0], args[1])) },
      ClearProperty: { in: 's', out: '', argNames: ['name'], handler: ({ args }) => run(ctl, serviceClearProperty(id, args[0])) },
      Connect: {
        in: '',
        out: '',
        handler: async () => {
          run(ctl, { kind: 'connect', id });
          // ConnMan answers Connect when the service is connected (or failed), not before
          const e = await ctl.waitConnected(id, CONNECT_TIMEOUT_MS);
          if (e) throw new ApiError(e.name, e.message);
          return [];
        },
      },
      Disconnect: { in: '', out: '', handler: () => run(ctl, { kind: 'disconnect', id }) },
      Remove: { in: '', out: '', handler: () => run(ctl, { kind: 'remove', id }) },
      MoveBefore: { in: 'o', out: '', argNames: ['service'], handler: ({ args }) => run(ctl, { kind: 'move', id, target: targetId(args[0]), where: 'before' }) },
      MoveAfter: { in: 'o', out: '', argNames: ['service'], handler: ({ args }) => run(ctl, { kind: 'move', id, target: targetId(args[0]), where: 'after' }) },
      ResetCounters: { in: '', out: '', handler: () => [] },
    },
    signals: { PropertyChanged: 'sv' },
  };
}
