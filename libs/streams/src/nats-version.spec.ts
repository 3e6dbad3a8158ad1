import { replicatedWriteWarning, serializesSubjectExpectations } from './nats-version.js';

describe('serializesSubjectExpectations', () => {
  it.each([
    ['2.9.10', false],
    ['2.9.20', false],
    ['2.9.21', true],
    ['2.9.25', true],
    ['2.10.0', true],
    ['2.10.0-beta.56', true],
    ['v2.11.3', true],
    ['3.0.0', true],
    ['1.4.1', false],
    ['', false],
    [undefined, false],
  ])('%s → %s', (version, expected) => {
    expect(serializesSubjectExpectations(version)).toBe(expected);
  });
});

describe('replicatedWriteWarning', () => {
  it('says nothing for one replica, whatever the server', () => {
    expect(replicatedWriteWarning('2.9.10', 1)).toBeUndefined();
  });

  it('says nothing for three replicas on a fixed server', () => {
    expect(replicatedWriteWarning('2.10.22', 3)).toBeUndefined();
  });

  it('names the version, the defect, the fix and the way out for three replicas on an old server', () => {
    expect(replicatedWriteWarning('2.9.10', 3)).toBe(
      'nats-server 2.9.10 does not serialize expected-last-subject-sequence on a replicated stream (nats-server#4320, fixed in 2.9.21): two instances writing one conversation at once can fork its log. Upgrade every NATS node to 2.9.21 or later (2.10+ recommended), or run LOG_REPLICAS=1.',
    );
  });
});
