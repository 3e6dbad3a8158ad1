/** NATS subject names. `prefix` isolates deployments (and test runs) sharing one NATS server. */
export function subjects(prefix: string) {
  return {
    log: (conversationId: string) => `${prefix}.log.${conversationId}`,
    allLogs: `${prefix}.log.*`,
    prompt: (conversationId: string) => `${prefix}.prompt.${conversationId}`,
    allPrompts: `${prefix}.prompt.*`,
    /** One record per conversation (id, title, creation time), so its row can be rebuilt from the log. */
    meta: (conversationId: string) => `${prefix}.meta.${conversationId}`,
    allMeta: `${prefix}.meta.*`,
    agent: (conversationId: string) => `${prefix}.agent.${conversationId}`,
    allAgent: `${prefix}.agent.*`,
    /** Commands for a conversation, answered by the instance that owns its write partition (see `partitionOf`). */
    writer: (partition: number, conversationId: string) => `${prefix}.writer.${partition}.${conversationId}`,
    partitionWriter: (partition: number) => `${prefix}.writer.${partition}.*`,
    /** A batch of commands for conversations the instance named `writer` writes (see `encodeCommandBatch`). */
    writerBatch: (writer: string) => `${prefix}.writer.batch.${writer}`,
    /**
     * Between instances only (agents are not allowed to publish here): a write that arrived at an
     * instance not owning the conversation's partition, handed to the owner so one instance at a
     * time writes each conversation.
     */
    forward: (partition: number, conversationId: string) => `${prefix}.forward.${partition}.${conversationId}`,
    partitionForward: (partition: number) => `${prefix}.forward.${partition}.*`,
    cancel: (conversationId: string) => `${prefix}.cancel.${conversationId}`,
    allCancels: `${prefix}.cancel.*`,
    conversationOf: (subject: string) => subject.slice(subject.lastIndexOf('.') + 1),
  };
}
export type Subjects = ReturnType<typeof subjects>;
