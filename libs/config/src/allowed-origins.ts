/**
 * One entry of `ALLOWED_ORIGINS`: a scheme, a host (or, with `*.`, every subdomain of it) and a
 * port (or, with `:*`, any port, the default one included).
 */
export interface OriginRule {
  scheme: string;
  host: string;
  subdomains: boolean;
  /** `''` for the scheme's default port, as browsers leave it out of `Origin`. */
  port: string;
}

/** Every origin (`*`), or the listed ones. Pages on the service's own origin are always allowed besides. */
export type AllowedOrigins = '*' | readonly OriginRule[];

/** For local use: pages on this machine, on any port. */
export const DEFAULT_ALLOWED_ORIGINS = 'http://localhost:*,http://127.0.0.1:*,http://[::1]:*';

export const ALLOWED_ORIGINS_FORMAT = 'origins such as https://app.example.com, comma-separated (scheme://host[:port]; the host may start with *. for its subdomains, the port may be *), or * for any origin';

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443', ws: '80', wss: '443' };
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(\d{1,5}))?$/;
const RULE = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?(\[[0-9a-f:.]+\]|[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(\d{1,5}|\*))?$/;

/** Parses `ALLOWED_ORIGINS`; throws saying what it expects and naming the first entry that is not an origin. */
export function parseAllowedOrigins(text: string): AllowedOrigins {
  const entries = text.split(',').map((entry) => entry.trim().toLowerCase());
  if (entries.includes('*')) {
    if (entries.length > 1) throw new Error('* alone (it allows every origin) or a list of origins without it');
    return '*';
  }
  return entries.map((entry) => {
    const match = RULE.exec(entry);
    const valid = match && !(match[2] && match[3]!.startsWith('[')) && (match[4] === undefined || match[4] === '*' || (Number(match[4]) >= 1 && Number(match[4]) <= 65535));
    if (!match || !valid) throw new Error(`${ALLOWED_ORIGINS_FORMAT}; "${entry}" is not one`);
    const [, scheme, wildcard, host, port] = match;
    return { scheme: scheme!, host: host!, subdomains: wildcard !== undefined, port: normalPort(scheme!, port) };
  });
}

/** Whether a browser's `Origin` header names an allowed origin; `null` and anything malformed are allowed only by `*`. */
export function isOriginAllowed(allowed: AllowedOrigins, origin: string): boolean {
  if (allowed === '*') return true;
  const match = ORIGIN.exec(origin.toLowerCase());
  if (!match) return false;
  const [, scheme, host, port] = match;
  const actualPort = normalPort(scheme!, port);
  return allowed.some(
    (rule) =>
      rule.scheme === scheme &&
      (rule.subdomains ? host!.endsWith(`.${rule.host}`) : host === rule.host) &&
      (rule.port === '*' || rule.port === actualPort),
  );
}

function normalPort(scheme: string, port: string | undefined): string {
  if (port === undefined || port === '*') return port ?? '';
  return port === DEFAULT_PORTS[scheme] ? '' : String(Number(port));
}
