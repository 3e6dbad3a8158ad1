import { isOriginAllowed, parseAllowedOrigins } from './allowed-origins.js';
import { ConfigError, loadEnv } from './env.schema.js';
import { settingsFrom } from './settings.js';

describe('ALLOWED_ORIGINS', () => {
  const allows = (list: string, origin: string) => isOriginAllowed(parseAllowedOrigins(list), origin);

  it('defaults to pages on this machine, on any port', () => {
    const { allowedOrigins } = settingsFrom(loadEnv({})).http;
    for (const origin of ['http://localhost:5173', 'http://localhost', 'http://127.0.0.1:8080', 'http://[::1]:3000']) expect({ origin, allowed: isOriginAllowed(allowedOrigins, origin) }).toEqual({ origin, allowed: true });
    for (const origin of ['https://app.example.com', 'http://localhost.example.com', 'http://app.localhost:3000', 'null']) expect({ origin, allowed: isOriginAllowed(allowedOrigins, origin) }).toEqual({ origin, allowed: false });
  });

  it('matches scheme, host and port exactly, ignoring case and default ports', () => {
    const list = 'https://app.example.com, http://APP.example.com:8080,https://admin.example.com:443';
    expect(allows(list, 'https://app.example.com')).toBe(true);
    expect(allows(list, 'https://App.Example.com:443')).toBe(true);
    expect(allows(list, 'http://app.example.com:8080')).toBe(true);
    expect(allows(list, 'https://admin.example.com')).toBe(true);
    expect(allows(list, 'http://app.example.com')).toBe(false);
    expect(allows(list, 'https://app.example.com:8443')).toBe(false);
    expect(allows(list, 'https://evil-app.example.com')).toBe(false);
    expect(allows(list, 'https://app.example.com.evil.net')).toBe(false);
    expect(allows(list, 'null')).toBe(false);
  });

  it('takes *. for every subdomain and :* for any port', () => {
    expect(allows('https://*.example.com', 'https://a.example.com')).toBe(true);
    expect(allows('https://*.example.com', 'https://a.b.example.com')).toBe(true);
    expect(allows('https://*.example.com', 'https://example.com')).toBe(false);
    expect(allows('https://*.example.com', 'https://badexample.com')).toBe(false);
    expect(allows('https://*.example.com', 'https://a.example.com:8443')).toBe(false);
    expect(allows('http://localhost:*', 'http://localhost')).toBe(true);
    expect(allows('capacitor://localhost', 'capacitor://localhost')).toBe(true);
  });

  it('takes * alone for any origin, null included', () => {
    expect(parseAllowedOrigins('*')).toBe('*');
    expect(allows('*', 'null')).toBe(true);
    expect(allows('*', 'https://anything.example')).toBe(true);
  });

  it('stops the server on a malformed entry, naming it', () => {
    const cases: [string, string][] = [
      ['https://app.example.com/', '"https://app.example.com/" is not one'],
      ['app.example.com', '"app.example.com" is not one'],
      ['https://app.example.com:99999', '"https://app.example.com:99999" is not one'],
      ['https://*.[::1]', '"https://*.[::1]" is not one'],
      ['https://a.example.com,,https://b.example.com', '"" is not one'],
      ['*,https://app.example.com', 'expected * alone (it allows every origin) or a list of origins without it'],
    ];
    for (const [value, message] of cases) {
      expect(() => loadEnv({ ALLOWED_ORIGINS: value })).toThrow(ConfigError);
      expect(() => loadEnv({ ALLOWED_ORIGINS: value })).toThrow(message);
    }
    expect(() => loadEnv({ ALLOWED_ORIGINS: 'app.example.com' })).toThrow(
      'ALLOWED_ORIGINS="app.example.com": expected origins such as https://app.example.com, comma-separated (scheme://host[:port]; the host may start with *. for its subdomains, the port may be *), or * for any origin; "app.example.com" is not one',
    );
  });
});
