export { SeqlineClient, type ConnectionState, type SeqlineClientOptions } from './seqline-client.js';
/** A request the server refused; `code` is one of the protocol's error codes. */
export { SeqlineError, ErrorCode, CloseCode } from '../../protocol/src/errors.js';
export { Subscription, type SubscriptionChange } from './subscription.js';
export { ConversationView, type ApplyResult } from './conversation-view.js';
export { MemoryCursorStore, KeyValueCursorStore, type CursorStore, type KeyValueStorage, type StoredConversation } from './cursor-store.js';
export type { SocketFactory, SocketLike } from './socket.js';
export type { ConversationEvent } from '../../protocol/src/events.js';
export type { Message } from '../../protocol/src/message.js';
