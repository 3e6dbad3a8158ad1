/** The part of the WebSocket API the client uses: browsers, React Native and the `ws` package all provide it. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type SocketFactory = new (url: string) => SocketLike;

export const OPEN = 1;

/** `https://host/base` → `wss://host/base/v1/ws`, with the token as `access_token` when there is one. */
export function socketUrl(baseUrl: string, token: string | undefined): string {
  const url = new URL(baseUrl.replace(/\/$/, '') + '/v1/ws');
  url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
  if (token) url.searchParams.set('access_token', token);
  return url.toString();
}
