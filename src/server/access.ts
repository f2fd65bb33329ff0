/**
 * Who may talk to the server, and which folders a client may load steers from.
 *
 * A browser lets any web page send requests to a server on loopback (a `text/plain` POST needs no CORS
 * preflight) and, after DNS rebinding (the page's own name re-pointed at 127.0.0.1), read the answers. Two
 * checks stop both, before routing:
 *  - Host: the name the client addressed must be a loopback name (`localhost`, `*.localhost`), an IP literal
 *    (a rebinding page can only send its own name), or one given with `--allow-host`.
 *  - Origin: a browser names the page that made a request; it must be this server itself (the playground),
 *    or an origin on the explicit allow-list (`allowedOrigins`, from `--cors ORIGIN`; "*" allows any). Only
 *    allow-listed origins get CORS headers (corsHeaders), and preflights (OPTIONS) are answered for them alone.
 *    Clients that send no Origin (curl, the OpenAI SDK on Node) are not browsers' cross-site requests.
 * Steer folders: POST /v1/steers is off unless the server was started with roots (`--allow-steer-load DIR`);
 * a path must resolve (symlinks followed) inside one, and one error covers both "absent" and "outside", so
 * answers reveal nothing about the rest of the disk.
 */
import { realpathSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { isAbsolute, resolve, sep } from 'node:path';
import { LmSteerError } from '../util/errors.js';
import { ApiError } from './openai.js';

export interface AccessPolicy {
  /** Host names allowed besides loopback names and IP literals (lowercase); '*' in it allows any. */
  allowedHosts: Set<string>;
  /** Origins (scheme://host[:port]) allowed besides the server's own; for opt-in CORS. */
  allowedOrigins: Set<string>;
  /** Real paths of the folders POST /v1/steers may load from; empty: loading over HTTP is off. */
  steerRoots: string[];
}

export function accessPolicy(
  o: { allowHosts?: string[]; allowOrigins?: string[]; steerRoots?: string[] } = {},
): AccessPolicy {
  return {
    allowedHosts: new Set((o.allowHosts ?? []).map((h) => h.trim().toLowerCase()).filter(Boolean)),
    allowedOrigins: new Set((o.allowOrigins ?? []).map(normalizeOrigin)),
    steerRoots: (o.steerRoots ?? []).map(steerRoot),
  };
}

/** `--cors` values as browsers send Origin: scheme://host[:port], lower case, no path; or "*". */
export function normalizeOrigin(o: string): string {
  const raw = o.trim();
  if (raw === '*') return raw;
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    u = undefined;
  }
  if (
    !u ||
    (u.protocol !== 'http:' && u.protocol !== 'https:') ||
    (u.pathname !== '/' && u.pathname !== '') ||
    u.search ||
    u.hash ||
    u.username
  )
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `--cors ${JSON.stringify(raw.slice(0, 100))} is not an origin`,
      "give scheme://host[:port] as the page's address bar shows it, e.g. --cors http://localhost:5173 (or '*' for any)",
    );
  return u.origin;
}

function steerRoot(dir: string): string {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    throw new LmSteerError('NOT_FOUND', `--allow-steer-load: folder ${dir} does not exist`, 'give existing folders');
  }
  if (!statSync(real).isDirectory())
    throw new LmSteerError('BAD_ARGUMENT', `--allow-steer-load: ${dir} is not a folder`, 'give folders');
  return real;
}

/** The hostname of a Host header value ("name:port", "[v6]:port"), lowercase, or undefined when malformed. */
function hostnameOf(host: string): string | undefined {
  try {
    const u = new URL(`http://${host}`);
    if (u.username || u.password || u.pathname !== '/' || u.search || u.hash) return undefined;
    return u.hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

export function hostAllowed(policy: AccessPolicy, host: string): boolean {
  const name = hostnameOf(host);
  if (name === undefined) return false;
  if (name === 'localhost' || name.endsWith('.localhost')) return true; // RFC 6761: always loopback
  if (isIP(name.replace(/^\[|\]$/g, '')) !== 0) return true; // an IP literal cannot be rebound
  return policy.allowedHosts.has('*') || policy.allowedHosts.has(name);
}

/** Same origin as the request (the playground), or allow-listed. `Origin: null` (sandboxed, file://) is neither. */
export function originAllowed(policy: AccessPolicy, origin: string, host: string | undefined): boolean {
  if (policy.allowedOrigins.has(origin) || policy.allowedOrigins.has('*')) return true;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
  return host !== undefined && u.host.toLowerCase() === host.toLowerCase();
}

/** Refuse (403) a request whose Host or Origin this server does not accept. */
export function checkAccess(policy: AccessPolicy, req: IncomingMessage): void {
  const host = req.headers.host;
  if (host !== undefined && !hostAllowed(policy, host)) {
    throw new ApiError(
      403,
      'FORBIDDEN',
      `requests for host "${host.slice(0, 100)}" are refused (DNS-rebinding protection)`,
      'address the server as localhost or by IP, or start it with --allow-host NAME',
    );
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !originAllowed(policy, origin, host)) {
    throw new ApiError(
      403,
      'FORBIDDEN',
      `cross-origin requests (from ${origin.slice(0, 100)}) are refused`,
      'use the playground served by this server, or call the API from a non-browser client',
    );
  }
}

/**
 * CORS headers for a request from an allow-listed origin (none for same-origin pages, clients without an
 * Origin, or a server without --cors). `preflight`: the headers answering an OPTIONS preflight as well.
 */
export function corsHeaders(policy: AccessPolicy, req: IncomingMessage, preflight = false): Record<string, string> {
  const origin = req.headers.origin;
  if (origin === undefined || policy.allowedOrigins.size === 0) return {};
  const exact = policy.allowedOrigins.has(origin);
  if (!exact && !policy.allowedOrigins.has('*')) return {};
  const headers: Record<string, string> = { 'Access-Control-Allow-Origin': exact ? origin : '*', Vary: 'Origin' };
  if (!preflight) return headers;
  // The OpenAI SDK sends its own x-stainless-* headers; an allowed page may send what it asks for (only names).
  const asked = req.headers['access-control-request-headers'];
  return {
    ...headers,
    'Access-Control-Allow-Methods': 'GET, POST, DELETE, OPTIONS',
    'Access-Control-Allow-Headers':
      typeof asked === 'string' && /^[\w-]+(\s*,\s*[\w-]+)*$/.test(asked.trim())
        ? asked.trim()
        : 'Authorization, Content-Type',
    'Access-Control-Max-Age': '600',
  };
}

/** The real path of a steer folder a client asked to load; 403 when loading is off, 404 outside the roots. */
export function resolveSteerPath(policy: AccessPolicy, given: string): string {
  if (policy.steerRoots.length === 0) {
    throw new ApiError(
      403,
      'FORBIDDEN',
      'loading steers over HTTP is off on this server',
      'start it with --allow-steer-load DIR to allow folders under DIR, or load steers at startup with --steer DIR',
    );
  }
  if (!given.includes('\0')) {
    for (const root of policy.steerRoots) {
      let real: string;
      try {
        real = realpathSync(isAbsolute(given) ? given : resolve(root, given));
      } catch {
        continue;
      }
      if (real === root || real.startsWith(root.endsWith(sep) ? root : root + sep)) return real;
    }
  }
  throw new ApiError(
    404,
    'NOT_FOUND',
    `no steer folder ${JSON.stringify(given.slice(0, 200))} under the allowed steer roots`,
    'give a folder under a --allow-steer-load root (relative paths are resolved against the roots)',
    'path',
  );
}

/** Loopback addresses and names: binding to anything else exposes the server to the network. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}
