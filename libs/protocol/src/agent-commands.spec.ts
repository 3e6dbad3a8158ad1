import { AgentCommandSchema, AgentReplySchema, ReceivedAgentReplySchema } from './agent-commands.js';

describe('agent replies', () => {
  it('reads a refusal with a code this version does not know as a refusal, not as an unreadable reply', () => {
    const fromNewerService = { ok: false, error: { code: 'SOME_FUTURE_CODE', message: 'refused' } };
    expect(ReceivedAgentReplySchema.parse(fromNewerService)).toEqual(fromNewerService);
    // The service itself only writes the codes it documents.
    expect(AgentReplySchema.safeParse(fromNewerService).success).toBe(false);
  });

  it('still refuses a reply that is not a reply', () => {
    expect(ReceivedAgentReplySchema.safeParse({ ok: false, error: { message: 'no code' } }).success).toBe(false);
    expect(ReceivedAgentReplySchema.safeParse({ ok: true }).success).toBe(false);
  });
});

describe('agent commands', () => {
  const start = { type: 'message.start', messageId: 'a1', agentId: 'gpt-worker-7', producerId: '7f9c2e' };

  it('refuses an agentId or producerId with a control character, naming the field', () => {
    for (const [field, value] of [['agentId', 'worker\r\nX-Injected: 1'], ['producerId', 'p\u0000']] as const) {
      const result = AgentCommandSchema.safeParse({ ...start, [field]: value });
      expect(result.success).toBe(false);
      expect(result.error?.issues).toEqual([expect.objectContaining({ path: [field], message: 'must not contain control characters' })]);
    }
  });

  it('takes any other name, spaces and non-Latin letters included', () => {
    expect(AgentCommandSchema.parse({ ...start, agentId: 'GPT worker ü 7', producerId: 'éà-1' })).toMatchObject({ agentId: 'GPT worker ü 7', producerId: 'éà-1' });
  });
});
