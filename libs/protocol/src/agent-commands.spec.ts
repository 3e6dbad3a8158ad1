import { AgentReplySchema, ReceivedAgentReplySchema } from './agent-commands.js';

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
