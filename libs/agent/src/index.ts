export * from './seqline-agent.js';
export * from './answer-stream.js';
export * from './agent-error.js';
