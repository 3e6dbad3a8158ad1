import { AgentCommandSchema } from '@seqline/protocol';
import { IngestCommandSchema, type IngestCommand } from './ingest-command.js';

/** What one instance hands another goes through JSON and is checked again where it arrives. */
const handedOver = (command: IngestCommand): IngestCommand => IngestCommandSchema.parse(JSON.parse(JSON.stringify(command)));

describe('IngestCommandSchema', () => {
  it.each([
    AgentCommandSchema.parse({ type: 'message.start', messageId: 'a1', agentId: 'writer', producerId: 'p-1', epoch: 2 }),
    AgentCommandSchema.parse({ type: 'message.append', messageId: 'a1', part: 3, delta: 'fine', block: { type: 'tool', id: 'call-1', toolName: 'weather', field: 'output' }, epoch: 2 }),
    AgentCommandSchema.parse({ type: 'message.complete', messageId: 'a1', epoch: 2 }),
    { type: 'message.post', messageId: 'q1', author: { role: 'user', id: 'ada' }, text: 'hello' },
    { type: 'message.cancel', messageId: 'a1', reason: 'cancelled by a device' },
    { type: 'message.expire', messageId: 'a1', error: 'agent lease expired', silentSince: '2026-12-04T20:00:00.000Z' },
  ] as IngestCommand[])('carries $type across instances unchanged', (command) => {
    expect(handedOver(command)).toEqual(command);
  });

  it('refuses what is none of them', () => {
    expect(() => IngestCommandSchema.parse({ type: 'message.post', messageId: 'q1', text: 'no author' })).toThrow();
    expect(() => IngestCommandSchema.parse({ type: 'conversation.delete', id: 'c' })).toThrow();
  });
});
