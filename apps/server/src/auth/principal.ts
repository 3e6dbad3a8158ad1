import { ErrorCode, SeqlineError, type Right } from '@seqline/protocol';

/** Who is calling. With authentication off, everyone is `open` and may do everything. */
export type Principal =
  | { kind: 'open' }
  | { kind: 'admin'; id: string; expiresAt: Date | null }
  | { kind: 'device'; userId: string; rights: ReadonlyMap<string, ReadonlySet<Right>>; expiresAt: Date | null };

export function requireRight(principal: Principal, conversationId: string, right: Right): void {
  switch (principal.kind) {
    case 'open':
    case 'admin':
      return;
    case 'device':
      if (principal.rights.get(conversationId)?.has(right)) return;
      throw new SeqlineError(ErrorCode.Forbidden, `this token does not grant ${right} on conversation ${conversationId}`);
    default: {
      const unreachable: never = principal;
      throw new Error(`unknown principal ${JSON.stringify(unreachable)}`);
    }
  }
}

export function requireAdmin(principal: Principal): void {
  if (principal.kind === 'device') throw new SeqlineError(ErrorCode.Forbidden, 'admin routes need an admin API key or an admin token');
}

/** The user a connection counts against, for per-user limits. */
export function userOf(principal: Principal): string | undefined {
  return principal.kind === 'device' ? principal.userId : undefined;
}

/**
 * How long until the principal's token expires, as a timer delay: null when it never does. Capped
 * at the longest delay a Node timer keeps (about 24.8 days); a longer one would fire at once.
 */
export function msUntilExpiry(principal: Principal): number | null {
  if (principal.kind === 'open' || !principal.expiresAt) return null;
  return Math.min(Math.max(0, principal.expiresAt.getTime() - Date.now()), 2 ** 31 - 1);
}
