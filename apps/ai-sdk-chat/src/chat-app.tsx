import { useChat } from '@ai-sdk/react';
import type { SeqlineChatTransport, SeqlineUIMessage } from '@seqline/ai-sdk';
import { useEffect, useRef, useState, type FormEvent } from 'react';

export interface ChatAppProps {
  conversationId: string;
  transport: SeqlineChatTransport;
  /** The conversation's history (`transport.history(id)`). */
  initialMessages: SeqlineUIMessage[];
}

/**
 * A chat written the way AI SDK apps are, with `useChat`; only the transport is Seqline's. A
 * reload resumes the answer in progress, other devices' prompts and answers show up live, and
 * Stop cancels the answer for everyone.
 */
export function ChatApp({ conversationId, transport, initialMessages }: ChatAppProps) {
  const { messages, sendMessage, status, stop, setMessages, resumeStream } = useChat<SeqlineUIMessage>({
    id: conversationId,
    transport,
    messages: initialMessages,
    resume: true,
  });
  const [input, setInput] = useState('');
  const busy = useRef(false);
  busy.current = status === 'submitted' || status === 'streaming';

  // Prompts and answers of other devices (and how an answer ended after Stop) arrive here while this chat is idle.
  useEffect(
    () =>
      transport.follow(conversationId, ({ messages: current, answering, ownStream }) => {
        if (busy.current || ownStream) return;
        setMessages(current);
        if (answering) void resumeStream();
      }),
    [conversationId, transport, setMessages, resumeStream],
  );

  useEffect(() => {
    (window as unknown as { aiSdkChat: unknown }).aiSdkChat = { status, messages };
  }, [status, messages]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!input.trim()) return;
    void sendMessage({ text: input });
    setInput('');
  };

  return (
    <main>
      <h1>
        Seqline × AI SDK <span className="status" id="status">{status}</span>
      </h1>
      <ol id="messages">
        {messages.map((message) => (
          <li key={message.id} data-id={message.id} data-role={message.role} data-status={message.metadata?.status ?? ''}>
            {message.parts.map((part, i) => {
              if (part.type === 'text') return <span key={i} className="text">{part.text}</span>;
              if (part.type === 'reasoning') return <span key={i} className="reasoning">{part.text}</span>;
              if (part.type.startsWith('tool-') && 'toolCallId' in part) {
                return (
                  <span key={i} className="tool">
                    {part.type.slice(5)}({JSON.stringify(part.input)}) {part.state === 'output-available' ? `→ ${JSON.stringify(part.output)}` : ''}
                  </span>
                );
              }
              return null;
            })}
            {message.metadata?.status === 'aborted' || message.metadata?.status === 'failed' ? <span className="status">({message.metadata.status})</span> : null}
          </li>
        ))}
      </ol>
      <form onSubmit={submit}>
        <input id="prompt" value={input} onChange={(event) => setInput(event.target.value)} placeholder="Ask something" />
        <button id="send" type="submit" disabled={busy.current}>Send</button>
        <button id="stop" type="button" onClick={() => void stop()} disabled={!busy.current}>Stop</button>
      </form>
    </main>
  );
}
