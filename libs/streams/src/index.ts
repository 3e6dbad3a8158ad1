export * from './nats-connection.js';
export * from './log-entry.js';
export * from './log-stream.js';
export * from './conversation-log.js';
export * from './log-tail.js';
export * from './lease.js';
export * from './partition-leases.js';
export * from './nats-requester.js';
