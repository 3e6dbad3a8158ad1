import { SeqlineChatTransport } from '@seqline/ai-sdk';
import { KeyValueCursorStore, SeqlineClient } from '@seqline/client';
import { createRoot } from 'react-dom/client';
import { ChatApp } from './chat-app.js';

// The device keeps each conversation's cursor and messages in localStorage: a reload resumes from there.
const conversationId = new URLSearchParams(location.search).get('conversation') ?? 'demo';
const client = new SeqlineClient({ url: location.origin, store: new KeyValueCursorStore(localStorage) });
const transport = new SeqlineChatTransport({ client });
const initialMessages = await transport.history(conversationId);
createRoot(document.getElementById('root')!).render(<ChatApp conversationId={conversationId} transport={transport} initialMessages={initialMessages} />);
