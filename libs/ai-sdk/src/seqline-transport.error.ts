/**
 * Why the Seqline chat transport refused a request; `code` is stable, `message` for people.
 * `SUBSCRIPTION_REFUSED` carries the server's own code (`UNKNOWN_CONVERSATION`, `FORBIDDEN`,
 * `TOO_MANY_SUBSCRIPTIONS`, …) in `serverCode`. `CLIENT_CLOSED`: the device client was closed
 * (a logout, say) while an answer streamed.
 */
export type SeqlineTransportErrorCode = 'REGENERATE_UNSUPPORTED' | 'EDIT_UNSUPPORTED' | 'NO_USER_MESSAGE' | 'NOT_LIVE' | 'SUBSCRIPTION_REFUSED' | 'CLIENT_CLOSED';

export class SeqlineTransportError extends Error {
  constructor(
    readonly code: SeqlineTransportErrorCode,
    message: string,
    readonly serverCode?: string,
  ) {
    super(message);
    this.name = 'SeqlineTransportError';
  }
}
