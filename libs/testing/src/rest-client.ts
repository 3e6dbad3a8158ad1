/** Minimal JSON-over-HTTP helper for tests: returns status and parsed body. */
export async function http<T = unknown>(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

export async function createConversation(baseUrl: string, id: string, title?: string, headers: Record<string, string> = {}): Promise<void> {
  const { status, body } = await http(baseUrl, 'POST', '/v1/conversations', { id, title }, headers);
  if (status !== 201) throw new Error(`creating conversation ${id} failed: ${status} ${JSON.stringify(body)}`);
}

/** The value of one series in the server's `/metrics` (e.g. `seqline_live_feeds` or `name{label="x"}`); undefined when it is absent. */
export async function metric(baseUrl: string, series: string): Promise<number | undefined> {
  const line = (await (await fetch(`${baseUrl}/metrics`)).text()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
