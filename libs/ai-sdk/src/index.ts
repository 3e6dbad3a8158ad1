export { SeqlineChatTransport, type SeqlineChatTransportOptions, type FollowListener } from './seqline-chat-transport.js';
export { SeqlineTransportError, type SeqlineTransportErrorCode } from './seqline-transport.error.js';
export { toUIMessages, toUIMessage, type SeqlineUIMessage, type SeqlineMessageMetadata } from './ui-messages.js';
export { AnswerChunker } from './answer-chunks.js';
export { publishToSeqline, type SeqlineAnswer, type SeqlineSource, type PublishOutcome } from './publish-to-seqline.js';
