// net.connman.Technology: one object per technology type, /net/connman/technology/<type>.
import { ApiError } from '../bus/errors.ts';
import type { InterfaceSpec } from '../bus/object-tree.ts';
import type { Controller } from './controller.ts';
import { technologyProperties, technologySetProperty } from './properties.ts';
import { run } from './service.ts';

export const TECHNOLOGY_IFACE = 'net.connman.Technology';

export function technologyInterface(ctl: Controller, type: string): InterfaceSpec {
  return {
    name: TECHNOLOGY_IFACE,
    methods: {
      GetProperties: {
        in: '',
        out: 'a{sv}',
        handler: () => {
          const st = ctl.state();
          const t = st.technologies.get(type as never);
          if (!t) throw new ApiError('NotFound', `technology ${type} is gone`);
          return [technologyProperties(st, t)];
        },
      },
      SetProperty: { in: 'sv', out: '', argNames: ['name', 'value'], handler: ({ args }) => run(ctl, technologySetProperty(type, args[0], args[1])) },
      Scan: { in: '', out: '', handler: () => {
        throw new ApiError('NotSupported', `${type} does not scan`);
      } },
    },
    signals: { PropertyChanged: 'sv' },
  };
}
