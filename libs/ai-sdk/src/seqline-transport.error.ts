/** Why the Seqline chat transport refused a request; `code` is stable, `message` for people. */
export type SeqlineTransportErrorCode = 'REGENERATE_UNSUPPORTED' | 'NO_USER_MESSAGE' | 'NOT_LIVE';

export class SeqlineTransportError extends Error {
  constructor(
    readonly code: SeqlineTransportErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SeqlineTransportError';
  }
}
