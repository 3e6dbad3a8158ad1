import { SeqlineClient } from '/sdk/seqline-client.mjs';

const params = new URLSearchParams(location.search);
const conversationId = params.get('conversation') || 'demo';
const problem = document.querySelector('#problem');
const show = (text) => {
  problem.hidden = !text;
  problem.textContent = text ?? '';
};

// The demo creates its conversation; a real app's backend would. 409: it exists already.
const created = await fetch('/v1/conversations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: conversationId, title: 'Demo conversation' }) });
if (!created.ok && created.status !== 409) {
  const body = await created.json().catch(() => ({}));
  show(`Could not create conversation "${conversationId}": ${body.code ?? created.status} ${body.message ?? ''}`);
}

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
  try {
    await sender.post(conversationId, text, { authorId: 'demo-user' });
    show(undefined);
  } catch (error) {
    // Refused (too long, rate limited, …): the question is given back to edit or send again.
    if (!input.value) input.value = text;
    show(`Not sent: ${error.code ?? 'ERROR'}: ${error.message}`);
  }
});
