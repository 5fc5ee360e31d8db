// The lab's private D-Bus daemon configuration: the stock system bus policy, ConnMan's policy,
// and limits raised for benchmarks. Pure.

export interface BusConfigOptions {
  labName: string;
  /** e.g. unix:path=/tmp/netsession-lab/lab/bus/system_bus_socket */
  listenAddress: string;
  /** policy files to include if present (ConnMan's, normally) */
  includes?: readonly string[];
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderBusConfig(opts: BusConfigOptions): string {
  const includes = (opts.includes ?? [])
    .map((p) => `  <include ignore_missing="yes">${xmlEscape(p)}</include>`)
    .join('\n');
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <!-- private system-like bus of netsession lab ${xmlEscape(opts.labName)} (stock system-bus default policy) -->
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>${xmlEscape(opts.listenAddress)}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <!-- the daemon under test (root) owns net.connman and calls clients back (Agent,
       Notification); everyone may call net.connman. This is ConnMan's own policy file,
       written out too so the lab works where the connman package is not installed. -->
  <policy user="root">
    <allow own="net.connman"/>
    <allow send_interface="net.connman.Agent"/>
    <allow send_interface="net.connman.Counter"/>
    <allow send_interface="net.connman.Notification"/>
  </policy>
  <policy context="default">
    <allow send_destination="net.connman"/>
  </policy>
${includes}
  <!-- benchmarks hold 1000s of sessions on 100s of connections: a daemon sends one Update
       call (reply expected) per session on a link change, far above the stock 128 -->
  <limit name="max_replies_per_connection">100000</limit>
  <limit name="max_connections_per_user">8192</limit>
  <limit name="max_completed_connections">8192</limit>
  <limit name="max_incomplete_connections">1024</limit>
  <limit name="max_match_rules_per_connection">4096</limit>
  <limit name="reply_timeout">25000</limit>
</busconfig>
`;
}
