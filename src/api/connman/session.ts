// Sessions on D-Bus: Manager.CreateSession/DestroySession, one net.connman.Session object
// per session (Destroy, Connect, Disconnect, Change — owner only), and the calls into the
// application's net.connman.Notification (Update with what changed; Release when the daemon
// ends a session the application did not end).
import dbus from 'dbus-next';
import type { CommandError } from '../../engine/engine.ts';
import type { Identity, Session, SessionRequest, SessionsState } from '../../engine/session-types.ts';
import type { EngineState, Service } from '../../engine/types.ts';
import type { BusConnection } from '../bus/bus-connection.ts';
import { ApiError } from '../bus/errors.ts';
import { METHOD_CALL, NO_REPLY_EXPECTED } from '../bus/message-type.ts';
import type { Outgoing } from '../bus/wire-encoder.ts';
import type { InterfaceSpec, MethodSpec, ObjectTree } from '../bus/object-tree.ts';
import type { Dict } from './properties.ts';
import { sameVariant } from './properties.ts';
import { SERVICE_GROUP, applySetting, parseCreateSettings, servicePart, sessionSettings } from './session-settings.ts';
import { sessionState } from '../../engine/sessions.ts';

export const SESSION_IFACE = 'net.connman.Session';
const NOTIFICATION_IFACE = 'net.connman.Notification';
/**
 * A call into a session's application (Update with its dict, or Release), without waiting for
 * its reply: the owner is the bus's name for the caller, the notifier path was checked at creation.
 */
export function notification(s: Session, member: 'Update' | 'Release', dict?: Dict): Outgoing {
  return { type: METHOD_CALL, flags: NO_REPLY_EXPECTED, destination: s.owner, path: s.notifier, interface: NOTIFICATION_IFACE, member, ...(dict ? { signature: 'a{sv}', body: [dict] } : {}) };
}

const OBJECT_PATH = /^\/(?:[A-Za-z0-9_]+(?:\/[A-Za-z0-9_]+)*)$/;
const MAX_PATH = 255;
/** how many departed bus names are remembered (a name is never reused; a lookup lasts seconds at most) */
const MAX_DEPARTED = 16384;

/** What the session objects need from the daemon. Errors come back as CommandError. */
export interface SessionController {
  sessions(): SessionsState;
  engine(): EngineState;
  now(): number;
  /** the emergency session, while one is connected */
  emergency(): Session | undefined;
  identify(sender: string): Promise<Identity>;
  /** the identity of a caller identify() has already answered for (no wait) */
  knownIdentity(sender: string): Identity | undefined;
  /** whether a session must wait for its owner's identity (a policy matches on it) */
  needsIdentity(): boolean;
  /** identity undefined: not needed now (needsIdentity false); the controller learns it when it is */
  create(owner: string, notifier: string, request: SessionRequest, identity: Identity | undefined): Session | CommandError;
  destroy(path: string): void;
  connect(path: string): CommandError | undefined;
  disconnect(path: string): CommandError | undefined;
  change(path: string, request: SessionRequest): CommandError | undefined;
}

const fail = (e: CommandError): never => {
  throw new ApiError(e.name, e.message);
};

/** What a session's application was last told (`dict`), and what it was made from. */
interface Told {
  dict: Dict;
  readonly session: Session;
  service: Service | undefined;
  readonly emergency: boolean;
}

export class SessionApi {
  /** what the application was last told, per session */
  private readonly told = new Map<string, Told>();

  /**
   * The service group as last published, per service id ('' for no service): a new part that
   * shows the same reuses these very variants, so that sessions compare it by identity. A
   * router advertisement refreshes a service's record every few seconds and shows nothing new;
   * with 10,000 sessions on it, comparing each session's values cost 200 ms per advertisement.
   */
  private readonly parts = new Map<string, { svc: Service | undefined; part: Dict }>();

  /**
   * Clients that left the bus. A CreateSession whose caller leaves while the caller is being
   * identified must not create a session: its NameOwnerChanged may be handled before the
   * handler resumes (same read from the bus), and the session would outlive its owner.
   */
  private readonly departed = new Set<string>();

  constructor(
    private readonly bus: BusConnection,
    private readonly tree: ObjectTree,
    private readonly ctl: SessionController,
  ) {}

  /** A client left the bus (the daemon watches NameOwnerChanged). */
  ownerGone(name: string): void {
    this.departed.add(name);
    if (this.departed.size > MAX_DEPARTED) this.departed.delete(this.departed.values().next().value!);
  }

  /** Who the caller is; fails (Failed) when it left the bus before we knew, or while we asked. */
  private async identify(sender: string): Promise<Identity> {
    let identity: Identity;
    try {
      identity = await this.ctl.identify(sender);
    } catch (e) {
      // nobody will read this answer: no need to log it as a failure of ours
      if (e instanceof Error && e.name === 'CallerGoneError') throw new ApiError('Failed', 'the caller left the bus');
      throw e;
    }
    if (this.departed.has(sender)) throw new ApiError('Failed', 'the caller left the bus');
    return identity;
  }

  /** Manager methods for sessions. */
  managerMethods(): Record<string, MethodSpec> {
    return {
      CreateSession: {
        in: 'a{sv}o',
        out: 'o',
        argNames: ['settings', 'notifier'],
        handler: ({ sender, args }) => {
          const notifier = String(args[1]);
          // ConnMan aborts on '/': the session path would end in '/'
          if (!OBJECT_PATH.test(notifier) || notifier.length > MAX_PATH) throw new ApiError('InvalidArguments', 'notifier must be an object path other than /');
          const request = parseCreateSettings(args[0]);
          const create = (identity: Identity | undefined): string[] => {
            const r = this.ctl.create(sender, notifier, request, identity);
            if ('name' in r) fail(r);
            const s = r as Session;
            this.tree.add(s.path, this.sessionIface);
            return [s.path];
          };
          if (this.departed.has(sender)) throw new ApiError('Failed', 'the caller left the bus');
          // a caller we know is answered at once: the replies to a batch of calls leave together
          const known = this.ctl.knownIdentity(sender);
          if (known) return create(known);
          // no policy asks who the caller is: the session need not wait for the bus to say
          return this.ctl.needsIdentity() ? this.identify(sender).then(create) : create(undefined);
        },
      },
      DestroySession: {
        in: 'o',
        out: '',
        argNames: ['session'],
        handler: ({ sender, args }) => {
          this.owned(String(args[0]), sender, true);
          this.ctl.destroy(String(args[0]));
          return [];
        },
      },
    };
  }

  private owned(path: string, sender: string, viaManager = false): Session {
    const s = this.ctl.sessions().sessions.get(path);
    // ConnMan: DestroySession of an unknown path is InvalidArguments
    if (!s) throw new ApiError(viaManager ? 'InvalidArguments' : 'NotFound', `no session ${path}`);
    if (s.owner !== sender) throw new ApiError('PermissionDenied', 'the session belongs to another client');
    return s;
  }

  /** One spec for every session object (the path comes with the call): 10,000 sessions need no 10,000 sets of handlers. */
  private readonly sessionIface: InterfaceSpec = this.makeSessionInterface();

  private makeSessionInterface(): InterfaceSpec {
    const check = (e: CommandError | undefined): [] => {
      if (e) fail(e);
      return [];
    };
    return {
      name: SESSION_IFACE,
      methods: {
        Destroy: {
          in: '',
          out: '',
          handler: ({ sender, msg }) => {
            const path = msg.path;
            this.owned(path, sender);
            this.ctl.destroy(path);
            return [];
          },
        },
        Connect: {
          in: '',
          out: '',
          handler: ({ sender, msg }) => {
            const path = msg.path;
            this.owned(path, sender);
            return check(this.ctl.connect(path));
          },
        },
        Disconnect: {
          in: '',
          out: '',
          handler: ({ sender, msg }) => {
            const path = msg.path;
            this.owned(path, sender);
            return check(this.ctl.disconnect(path));
          },
        },
        Change: {
          in: 'sv',
          out: '',
          argNames: ['name', 'value'],
          handler: ({ sender, msg, args }) => {
            const path = msg.path;
            const s = this.owned(path, sender);
            return check(this.ctl.change(path, applySetting(s.request, String(args[0]), args[1], false)));
          },
        },
      },
      signals: {},
    };
  }

  /**
   * Tells every application what changed for its sessions: the first Update is complete,
   * later ones carry only what changed (the service group together). Sessions whose inputs
   * are the very same objects as last time are skipped without computing anything.
   */
  publish(removed: Iterable<{ session: Session; byDaemon: boolean }> = [], only?: Iterable<string>): void {
    this.bus.sendBatch((sent) => this.tell(removed, only, sent));
  }

  /** `sent` is told of every message (sendBatch: its writes leave a few dozen at a time). */
  private tell(removed: Iterable<{ session: Session; byDaemon: boolean }>, only: Iterable<string> | undefined, sent: () => void): void {
    const st = this.ctl.sessions();
    const engine = this.ctl.engine();
    const emergency = this.ctl.emergency() !== undefined;
    const now = this.ctl.now();
    // what sessions take from a service is made once per service, not once per session
    const made = new Map<Service | undefined, Dict>();
    const partOf = (svc: Service | undefined): Dict => {
      let p = made.get(svc);
      if (!p) {
        p = this.partFor(svc, now);
        made.set(svc, p);
      }
      return p;
    };
    if (this.parts.size > engine.services.size + 1) for (const id of this.parts.keys()) if (id !== '' && !engine.services.has(id)) this.parts.delete(id);
    const visit = (s: Session): void => {
      const service = s.serviceId ? engine.services.get(s.serviceId) : undefined;
      const last = this.told.get(s.path);
      if (last && last.session === s && last.service === service && last.emergency === emergency) return;
      if (last && last.session === s && last.emergency === emergency && service && last.service?.id === service.id) {
        // only the service's record changed (a router advertisement, a check): often nothing it
        // shows, and then nothing is made for this session (the parts are interned)
        const part = partOf(service);
        const state = sessionState(s, service);
        let out: Dict | undefined;
        if ((last.dict.State as { value?: unknown } | undefined)?.value !== state) out = { State: new dbus.Variant('s', state) };
        for (const k of SERVICE_GROUP) {
          if (last.dict[k] === part[k] || sameVariant(last.dict[k], part[k])) continue;
          out = out ?? {};
          out[k] = part[k] as Dict[string];
        }
        last.service = service;
        if (out) {
          last.dict = { ...last.dict, ...out };
          this.notify(s, sent, 'Update', out);
        }
        return;
      }
      const dict = sessionSettings(s, service, now, emergency, partOf(service));
      let out: Dict = dict;
      if (last) {
        out = {};
        const serviceChanged = last.service?.id !== service?.id;
        for (const [k, v] of Object.entries(dict)) {
          if (serviceChanged && (SERVICE_GROUP as readonly string[]).includes(k)) out[k] = v;
          else if (!sameVariant(last.dict[k], v)) out[k] = v;
        }
      }
      this.told.set(s.path, { dict, session: s, service, emergency });
      if (Object.keys(out).length > 0) this.notify(s, sent, 'Update', out);
    };
    // sessions with Priority granted are told first (seed 001)
    const first = (s: Session): boolean => s.request.priority && s.policy?.priority === true;
    // `only`: the caller knows no other session can have news (services and emergency as before)
    const some: Session[] | undefined = only ? [] : undefined;
    if (only && some) for (const p of only) {
      const s = st.sessions.get(p);
      if (s) some.push(s);
    }
    const all = some ?? st.sessions.values();
    for (const s of all) if (first(s)) visit(s);
    for (const s of some ?? st.sessions.values()) if (!first(s)) visit(s);
    for (const { session: s, byDaemon } of removed) {
      const last = this.told.get(s.path);
      this.told.delete(s.path);
      this.tree.remove(s.path);
      if (byDaemon) this.notify(s, sent, 'Release');
      else if (last && (last.dict.State as { value?: unknown } | undefined)?.value !== 'disconnected') {
        // ConnMan: a session that ends while connected tells its owner it is disconnected
        const V = dbus.Variant;
        this.notify(s, sent, 'Update', { State: new V('s', 'disconnected'), Name: new V('s', ''), IPv4: new V('a{sv}', {}), IPv6: new V('a{sv}', {}), Interface: new V('s', ''), Bearer: new V('s', '') });
      }
    }
  }

  /**
   * What sessions take from this service: the last part made for this very service record, or
   * a new one in which every value that shows the same as the last one's is the last one's variant.
   */
  private partFor(svc: Service | undefined, now: number): Dict {
    const id = svc?.id ?? '';
    const prev = this.parts.get(id);
    if (prev && prev.svc === svc) return prev.part;
    const part = servicePart(svc, now);
    if (prev) for (const k of SERVICE_GROUP) if (sameVariant(prev.part[k], part[k])) part[k] = prev.part[k] as Dict[string];
    this.parts.set(id, { svc, part });
    return part;
  }

  /** A call into the application, without waiting for (or keeping a slot for) its reply. */
  private notify(s: Session, sent: () => void, member: 'Update' | 'Release', dict?: Dict): void {
    try {
      this.bus.send(notification(s, member, dict));
      sent();
    } catch {
      // the bus connection is gone; the daemon notices that elsewhere
    }
  }

  /** Takes an ended session's object off the bus now (what it was told is kept for its last Update or Release). */
  unexport(path: string): void {
    this.tree.remove(path);
  }
}
