import { jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { of } from 'rxjs';
import { OriginPolicy } from '../../auth/origin-policy.js';
import { OriginCheckingWsAdapter } from './origin-checking-ws.adapter.js';

const adapter = () => new OriginCheckingWsAdapter(undefined as never, new OriginPolicy({} as never));

describe('OriginCheckingWsAdapter.bindMessageHandlers', () => {
  it('leaves a socket of a gateway without message handlers untouched (the gateway reads frames itself)', () => {
    const socket = new EventEmitter();
    adapter().bindMessageHandlers(socket, [], (data) => of(data));
    expect(socket.eventNames()).toEqual([]);
  });

  it("keeps Nest's pipeline for gateways that have handlers", () => {
    const socket = new EventEmitter();
    adapter().bindMessageHandlers(socket, [{ message: 'x', methodName: 'x', callback: () => Promise.resolve(undefined), isAckHandledManually: false }], (data) => of(data));
    expect(socket.listenerCount('message')).toBe(1);
  });
});

describe('OriginCheckingWsAdapter.bindErrorHandler', () => {
  it("logs a device socket's error (what its client sent wrong) at debug level, and the server's own at error level", () => {
    const target = adapter();
    const logger = (target as unknown as { logger: { debug: unknown; error: unknown } }).logger;
    const debug = jest.fn();
    const error = jest.fn();
    Object.assign(logger, { debug, error });
    const server = new EventEmitter();
    target.bindErrorHandler(server);
    const socket = new EventEmitter();
    server.emit('connection', socket);
    socket.emit('error', new RangeError('Invalid WebSocket frame: MASK must be set'));
    expect(debug).toHaveBeenCalledWith("a device's socket failed: Invalid WebSocket frame: MASK must be set");
    expect(error).not.toHaveBeenCalled();
    server.emit('error', new Error('listen EADDRINUSE'));
    expect(error).toHaveBeenCalledTimes(1);
  });
});
