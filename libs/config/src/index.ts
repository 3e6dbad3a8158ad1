export * from './env.schema.js';
export * from './settings.js';
export * from './logger.js';
