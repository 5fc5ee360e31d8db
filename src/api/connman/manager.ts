// net.connman.Manager at /.
import { orderServices } from '../../engine/order.ts';
import { ApiError } from '../bus/errors.ts';
import type { InterfaceSpec } from '../bus/object-tree.ts';
import type { Controller } from './controller.ts';
import { managerProperties, managerSetProperty, serviceProperties, servicePath, technologyPath, technologyProperties } from './properties.ts';
import { run } from './service.ts';

export const MANAGER_IFACE = 'net.connman.Manager';

export interface AgentRegistry {
  agent: { owner: string; path: string } | undefined;
}

const OBJECT_PATH = /^\/(?:[A-Za-z0-9_]+(?:\/[A-Za-z0-9_]+)*)?$/;

export function managerInterface(ctl: Controller, agents: AgentRegistry, extra: Partial<InterfaceSpec['methods']> = {}): InterfaceSpec {
  // SessionMode: kept for compatibility, as in ConnMan: stored and reported, no signal, no effect
  let sessionMode = false;
  return {
    name: MANAGER_IFACE,
    methods: {
      GetProperties: { in: '', out: 'a{sv}', handler: () => [managerProperties(ctl.state(), sessionMode)] },
      SetProperty: {
        in: 'sv',
        out: '',
        argNames: ['name', 'value'],
        handler: ({ args }) => {
          const cmd = managerSetProperty(args[0], args[1]);
          if (!('sessionMode' in cmd)) return run(ctl, cmd);
          sessionMode = cmd.sessionMode;
          return [];
        },
      },
      GetTechnologies: {
        in: '',
        out: 'a(oa{sv})',
        handler: () => {
          const st = ctl.state();
          return [[...st.technologies.values()].map((t) => [technologyPath(t.type), technologyProperties(st, t)])];
        },
      },
      GetServices: {
        in: '',
        out: 'a(oa{sv})',
        handler: () => {
          const st = ctl.state();
          const now = ctl.now();
          return [orderServices(st.services.values(), st.config.preferredTechnologies).map((s) => [servicePath(s.id), serviceProperties(s, now)])];
        },
      },
      GetPeers: { in: '', out: 'a(oa{sv})', handler: () => [[]] },
      GetTetheringClients: { in: '', out: 'as', handler: () => [[]] },
      RegisterAgent: {
        in: 'o',
        out: '',
        argNames: ['path'],
        handler: ({ sender, args }) => {
          const path = String(args[0]);
          if (!OBJECT_PATH.test(path) || path === '/') throw new ApiError('InvalidArguments', 'agent path must be an object path other than /');
          if (agents.agent) throw new ApiError('AlreadyExists', 'an agent is already registered');
          agents.agent = { owner: sender, path };
          return [];
        },
      },
      UnregisterAgent: {
        in: 'o',
        out: '',
        argNames: ['path'],
        handler: ({ sender, args }) => {
          const a = agents.agent;
          if (!a || a.path !== args[0]) throw new ApiError('NotRegistered', 'no such agent');
          if (a.owner !== sender) throw new ApiError('PermissionDenied', 'the agent belongs to another client');
          agents.agent = undefined;
          return [];
        },
      },
      RegisterCounter: { in: 'ouu', out: '', handler: () => {
        throw new ApiError('NotSupported', 'counters are not supported yet');
      } },
      UnregisterCounter: { in: 'o', out: '', handler: () => {
        throw new ApiError('NotSupported', 'counters are not supported yet');
      } },
      CreateSession: { in: 'a{sv}o', out: 'o', argNames: ['settings', 'notifier'], handler: () => {
        throw new ApiError('NotSupported', 'sessions are not available yet');
      } },
      DestroySession: { in: 'o', out: '', argNames: ['session'], handler: () => {
        throw new ApiError('NotSupported', 'sessions are not available yet');
      } },
      ...(extra as InterfaceSpec['methods']),
    },
    signals: {
      PropertyChanged: 'sv',
      TechnologyAdded: 'oa{sv}',
      TechnologyRemoved: 'o',
      ServicesChanged: 'a(oa{sv})ao',
      PeersChanged: 'a(oa{sv})ao',
    },
  };
}
