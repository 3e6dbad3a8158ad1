import { foldsWhole } from './known-fragment.js';

describe('foldsWhole', () => {
  it('takes only fragments this version writes, field by field: nothing of a newer version would be lost in a fold written back', () => {
    expect(foldsWhole({ type: 'text', id: 't', text: 'Hi' })).toBe(true);
    expect(foldsWhole({ type: 'tool', id: 'c', toolName: 'f', input: '', output: '1' })).toBe(true);
    expect(foldsWhole({ type: 'data', id: 'd', name: 'n', data: '1' })).toBe(true);
    expect(foldsWhole({ type: 'chart', id: 'c1', spec: 'bars' })).toBe(false);
    expect(foldsWhole({ type: 'data', id: 'd', name: 'n', data: '1', ttl: 5 })).toBe(false);
    expect(foldsWhole({ type: 'constructor', id: 'x' })).toBe(false);
    expect(foldsWhole({ type: 'tool', id: 'c', toolName: 'f' })).toBe(false);
    expect(foldsWhole({ type: 'data', id: 'd', name: 'n', data: null })).toBe(false);
    expect(foldsWhole(null)).toBe(false);
  });
});
