export * from './database.js';
export * from './migrator.js';
export * from './prisma.service.js';
export * from './records.js';
export * from './conversation.repository.js';
export * from './message.repository.js';
export * from './conversation-state.js';
export * from './log-chain.js';
