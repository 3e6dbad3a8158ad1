export * from './allowed-origins.js';
export * from './env.schema.js';
export * from './settings.js';
export * from './logger.js';
export * from './install-root.js';
