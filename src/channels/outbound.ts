import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction, type Socket } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { z } from 'zod';
import { HeraldError } from '../errors.js';

/**
 * Where a channel may send a request whose URL came from event data. A URL written in the config
 * is the operator's choice and trusted; one rendered from a template (or a recipient) may point
 * anywhere an event sender likes, including Herald's own network. Such URLs may only reach public
 * addresses, checked on the address actually connected to, unless the channel allows the host.
 */
export const outboundPolicySchema = {
  allowHosts: z
    .array(z.string().min(1))
    .default([])
    .describe(
      'Hosts that URLs rendered from event data may reach even on a private, loopback or link-local address: exact names or IP addresses, or `*.example.internal` for every subdomain. URLs written literally in the config need no entry.',
    ),
  allowPrivateNetworks: z
    .boolean()
    .default(false)
    .describe(
      'Let URLs rendered from event data reach any address, private networks, loopback and cloud metadata included. Off by default: such URLs may only reach public addresses.',
    ),
};

export interface OutboundPolicy {
  allowHosts: readonly string[];
  allowPrivateNetworks: boolean;
}

/** Resolves a name to all its addresses; injectable so tests can make a name resolve to anything. */
export type Lookup = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const systemLookup: Lookup = (hostname, options, callback) => dnsLookup(hostname, options, callback);

type AddressKind =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared (CGNAT)'
  | 'link-local'
  | 'multicast'
  | 'reserved';

/** IPv4 ranges no URL from event data may reach, by what they are. */
const IPV4_RANGES: [AddressKind, string, number][] = [
  ['unspecified', '0.0.0.0', 8],
  ['private', '10.0.0.0', 8],
  ['shared (CGNAT)', '100.64.0.0', 10],
  ['loopback', '127.0.0.0', 8],
  ['link-local', '169.254.0.0', 16],
  ['private', '172.16.0.0', 12],
  ['reserved', '192.0.0.0', 24],
  ['private', '192.168.0.0', 16],
  ['reserved', '198.18.0.0', 15],
  ['multicast', '224.0.0.0', 4],
  ['reserved', '240.0.0.0', 4],
];

const IPV6_RANGES: [AddressKind, string, number][] = [
  // ::/128 unspecified, ::1 loopback, and the deprecated IPv4-compatible form ::a.b.c.d.
  ['unspecified', '::', 128],
  ['loopback', '::1', 128],
  ['reserved', '::', 96],
  ['reserved', '100::', 64],
  ['private', 'fc00::', 7],
  ['link-local', 'fe80::', 10],
  ['private', 'fec0::', 10],
  ['multicast', 'ff00::', 8],
];

const hex16 = (a: number, b: number) => ((a << 8) | b).toString(16);

/** The same IPv4 range seen through IPv4-mapped, NAT64 and 6to4 IPv6 addresses. */
function ipv6FormsOf(address: string, prefix: number): [string, number][] {
  const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
  const tail = `${hex16(a, b)}:${hex16(c, d)}`;
  return [
    [`::ffff:${tail}`, 96 + prefix],
    [`64:ff9b::${tail}`, 96 + prefix],
    [`2002:${tail}::`, 16 + prefix],
  ];
}

const blockLists = new Map<AddressKind, BlockList>();
const blockListOf = (kind: AddressKind) => {
  const list = blockLists.get(kind) ?? new BlockList();
  blockLists.set(kind, list);
  return list;
};
for (const [kind, address, prefix] of IPV4_RANGES) {
  const list = blockListOf(kind);
  list.addSubnet(address, prefix, 'ipv4');
  for (const [v6, v6prefix] of ipv6FormsOf(address, prefix)) list.addSubnet(v6, v6prefix, 'ipv6');
}
for (const [kind, address, prefix] of IPV6_RANGES) blockListOf(kind).addSubnet(address, prefix, 'ipv6');

/**
 * What kind of non-public address this is (`loopback`, `private`, `link-local`…), or null for a
 * public one. Anything that is not a plain IP address (a zone index, garbage) counts as reserved.
 */
export function nonPublicKind(address: string): AddressKind | null {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const family = isIP(bare);
  if (family === 0) return 'reserved';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [kind, list] of blockLists) if (list.check(bare, type)) return kind;
  return null;
}

/** True when the policy lets this host (a URL's hostname) reach private addresses. */
export function hostAllowed(hostname: string, policy: OutboundPolicy): boolean {
  if (policy.allowPrivateNetworks) return true;
  const host = normalizeHost(hostname);
  return policy.allowHosts.some((entry) => {
    const allowed = normalizeHost(entry);
    return allowed.startsWith('*.') ? host.endsWith(allowed.slice(1)) : host === allowed;
  });
}

/** Lower case, no IPv6 brackets, no trailing dot: `[::1]` and `::1`, `Host.` and `host` are one. */
function normalizeHost(host: string): string {
  const lower = host.toLowerCase().replace(/\.$/, '');
  return lower.startsWith('[') && lower.endsWith(']') ? lower.slice(1, -1) : lower;
}

/** A request refused by the address policy: permanent, never retried. */
export class OutboundRefusedError extends HeraldError {
  constructor(message: string) {
    super('CHANNEL_ERROR', message);
    this.name = 'OutboundRefusedError';
  }
}

const HOW_TO_ALLOW =
  'list the host in the channel’s allowHosts or set allowPrivateNetworks: true to allow it';

function refused(host: string, address: string, kind: AddressKind): OutboundRefusedError {
  const where = normalizeHost(host) === normalizeHost(address) ? address : `${host} (${address})`;
  return new OutboundRefusedError(
    `refused to connect to ${where}: a ${kind} address, not reachable from a URL rendered from event data; ${HOW_TO_ALLOW}`,
  );
}

/**
 * Checks what can be checked before connecting: the scheme, and a host that is an IP address in
 * any notation (the WHATWG parser has already turned `0x7f000001`, `2130706433`, `0177.0.0.1` and
 * `127.1` into `127.0.0.1`). Host names are checked when they resolve, by `guardedLookup`.
 */
export function checkBeforeConnect(url: URL): OutboundRefusedError | null {
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return new OutboundRefusedError(`refused a ${url.protocol} URL: only http and https may be rendered`);
  const host = normalizeHost(url.hostname);
  if (isIP(host) === 0) return null;
  const kind = nonPublicKind(host);
  return kind ? refused(host, host, kind) : null;
}

/**
 * A `lookup` for sockets that resolves as usual and keeps only public addresses, so the socket
 * connects to an address that was checked: a name that resolves to a public address for a check
 * and to 127.0.0.1 for the connection (DNS rebinding) has no gap to slip through.
 */
export function guardedLookup(lookup: Lookup = systemLookup): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (err, all) => {
      if (err) return callback(err, '', 0);
      const allowed = all.filter((a) => nonPublicKind(a.address) === null);
      if (allowed.length === 0) {
        const first = all[0];
        return callback(
          first
            ? refused(hostname, first.address, nonPublicKind(first.address)!)
            : new OutboundRefusedError(`${hostname} resolved to no address`),
          '',
          0,
        );
      }
      if (options.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      else callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}

export interface OutboundAgentOptions {
  keepAliveTimeout: number;
  connections: number;
  /** Only public addresses: for URLs rendered from event data. */
  guarded: boolean;
  lookup?: Lookup;
}

/**
 * An undici Agent. A guarded one resolves through `guardedLookup` and, as a last check, refuses
 * a socket whose remote address is not public whatever way it was reached.
 */
export function outboundAgent(options: OutboundAgentOptions): Agent {
  const base = { keepAliveTimeout: options.keepAliveTimeout, connections: options.connections };
  if (!options.guarded) {
    if (!options.lookup) return new Agent(base);
    const lookup = options.lookup;
    const plainLookup: LookupFunction = (hostname, lookupOptions, callback) =>
      lookup(hostname, { ...lookupOptions, all: true }, (err, all) => {
        if (err || all.length === 0) return callback(err ?? new Error(`${hostname}: no address`), '', 0);
        if (lookupOptions.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, all);
        else callback(null, all[0]!.address, all[0]!.family);
      });
    return new Agent({ ...base, connect: { lookup: plainLookup } });
  }
  const connect = buildConnector({ lookup: guardedLookup(options.lookup) });
  return new Agent({
    ...base,
    connect(opts, callback) {
      connect(opts, (err, socket) => {
        if (err || !socket) return callback(err ?? new Error('no socket'), null);
        const remote = (socket as Socket).remoteAddress ?? '';
        const kind = nonPublicKind(remote);
        if (kind) {
          socket.destroy();
          return callback(refused(opts.hostname, remote, kind), null);
        }
        callback(null, socket);
      });
    },
  });
}

/** The refusal inside an error from a request, if the address policy is what stopped it. */
export function refusalOf(err: unknown): OutboundRefusedError | null {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof OutboundRefusedError) return e;
  }
  return null;
}
