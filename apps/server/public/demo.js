import { SeqlineClient } from '/sdk/seqline-client.mjs';

const params = new URLSearchParams(location.search);
const conversationId = params.get('conversation') ?? 'demo';

// The demo creates its conversation; a real app's backend would.
await fetch('/v1/conversations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: conversationId, title: 'Demo conversation' }) });

for (const pane of ['A', 'B']) {
  const frame = document.createElement('iframe');
  frame.title = `Device ${pane}`;
  frame.name = `pane-${pane}`;
  frame.src = `/pane.html?conversation=${encodeURIComponent(conversationId)}&pane=${pane}`;
  document.querySelector('#panes').append(frame);
}

const sender = new SeqlineClient({ url: location.origin });
document.querySelector('#prompt').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = document.querySelector('#text');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  await sender.post(conversationId, text, { authorId: 'demo-user' });
});
