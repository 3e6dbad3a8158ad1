import { SeqlineAgent, type AgentOptions } from '@seqline/agent';
import type { Settings } from '@seqline/config';
import { createTestSettings, dropTestResources } from './test-settings.js';
import { startTestServer, type RunningServer } from './test-server.js';
import { randomBytes } from 'node:crypto';
import { TcpProxy } from './processes/tcp-proxy.js';

export interface SeqlineContext {
  settings: Settings;
  server: RunningServer;
  /** Connects an agent to this run's NATS prefix and stream; closed after the suite. */
  agent(agentId: string, options?: Partial<AgentOptions>): Promise<SeqlineAgent>;
}

/**
 * Registers beforeAll/afterAll that start an isolated server for the suite and clean up after it.
 * `overrides` may be a function, read when the server starts: for values known only then, such
 * as the port of a server an earlier beforeAll started.
 */
export function useSeqline(overrides: Record<string, string> | (() => Record<string, string>) = {}): SeqlineContext {
  const agents: SeqlineAgent[] = [];
  const context = {} as SeqlineContext;
  beforeAll(async () => {
    context.settings = createTestSettings(typeof overrides === 'function' ? overrides() : overrides);
    context.server = await startTestServer(context.settings);
    context.agent = async (agentId, options = {}) => {
      const agent = await SeqlineAgent.connect({
        ...options,
        servers: context.settings.nats.url,
        agentId,
        prefix: context.settings.log.prefix,
        stream: context.settings.log.stream,
      });
      agents.push(agent);
      return agent;
    };
  });
  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.close().catch(() => undefined)));
    await context.server?.close();
    if (context.settings) await dropTestResources(context.settings);
  });
  return context;
}

export interface SeqlineBehindProxy {
  seqline: SeqlineContext;
  /** The proxy every connection of the server to Postgres goes through: freeze it to cut the network. */
  proxy(): TcpProxy;
  /** The suite's database reached directly, not through the proxy (to lock a table while the network is cut, say). */
  directDatabaseUrl(): string;
}

/**
 * Like `useSeqline`, with the server reaching the machine's Postgres through a TCP proxy the test
 * controls, and a database of the suite's own.
 */
export function useSeqlineBehindPostgresProxy(overrides: Record<string, string> = {}): SeqlineBehindProxy {
  const postgres = new URL(process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');
  const database = `/seqline_test_proxied_${randomBytes(4).toString('hex')}`;
  let proxy: TcpProxy;
  beforeAll(async () => {
    proxy = await TcpProxy.start(Number(postgres.port || 5432));
  });
  const seqline = useSeqline(() => {
    const url = new URL(postgres);
    url.port = String(proxy.port);
    url.pathname = database;
    return { DATABASE_URL: url.toString(), ...overrides };
  });
  // After the suite's server and database are gone, which go through the proxy too.
  afterAll(async () => {
    proxy.thaw();
    await proxy.close();
  });
  return {
    seqline,
    proxy: () => proxy,
    directDatabaseUrl: () => {
      const url = new URL(postgres);
      url.pathname = database;
      return url.toString();
    },
  };
}

/** Polls `check` until it holds. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
