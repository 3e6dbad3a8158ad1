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
