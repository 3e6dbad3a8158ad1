export * from './test-settings.js';
export * from './test-server.js';
export * from './rest-client.js';
export * from './ws-device.js';
export * from './use-seqline.js';
export * from './browser.js';
