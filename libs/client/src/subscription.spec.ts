import { Subscription, type SubscriptionChange } from './subscription.js';

describe('Subscription', () => {
  it('tells its listeners once when it ends, so a view waiting on it does not wait for ever', () => {
    const detached: string[] = [];
    const subscription = new Subscription('c1', (ended) => detached.push(ended.conversationId));
    const changes: SubscriptionChange[] = [];
    subscription.on((change) => changes.push(change));
    subscription.end();
    subscription.end();
    subscription.close();
    expect(changes).toEqual([{ type: 'ended' }]);
    expect(detached).toEqual(['c1']);
  });
});
