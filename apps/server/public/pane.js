import { KeyValueCursorStore, SeqlineClient } from '/sdk/seqline-client.mjs';

const params = new URLSearchParams(location.search);
const conversationId = params.get('conversation') || 'demo';
const pane = params.get('pane') || 'A';
document.querySelector('#name').textContent = `Device ${pane}`;

// Each pane keeps its own cursor in localStorage, as an app on its own device would.
const store = new KeyValueCursorStore(localStorage, `seqline-demo-${pane}`);
const client = new SeqlineClient({ url: location.origin, store });
const subscription = client.subscribe(conversationId);

const badge = document.querySelector('#state');
const problem = document.querySelector('#problem');
// A refusal for good (the subscription's, or the connection's) is shown while it stands; a
// passing error (a cancel refused, say) for a few seconds.
let passing;
let passingTimer;
const showProblem = () => {
  const refusal = subscription.refusal ?? client.refusal;
  const text = refusal ? `${refusal.code}: ${refusal.message}` : passing;
  problem.hidden = !text;
  problem.textContent = text ?? '';
};
const showState = (state) => {
  badge.textContent = state;
  badge.dataset.state = state;
  showProblem();
};
client.onStateChange(showState);
showState(client.state);

// One item per message, kept across renders: only what changed is touched, so a button stays
// the same node (clickable) and a selection stays put while an answer streams in.
const list = document.querySelector('#messages');
const items = new Map();
function itemFor(message) {
  let item = items.get(message.id);
  if (!item) {
    item = document.createElement('li');
    item.dataset.id = message.id;
    // The button heads the message: below its text it would move away as the text grows.
    const head = document.createElement('div');
    head.className = 'meta';
    const meta = document.createElement('span');
    const stop = document.createElement('button');
    stop.type = 'button';
    stop.textContent = 'stop';
    stop.onclick = () => {
      stop.disabled = true;
      client.cancel(conversationId, message.id).catch((error) => {
        stop.disabled = false;
        showError(error);
      });
    };
    head.append(meta, stop);
    const text = document.createElement('div');
    text.className = 'text';
    item.append(head, text);
    items.set(message.id, item);
  }
  const [head, text] = item.children;
  const [meta, stop] = head.children;
  item.className = `message ${message.author.role} ${message.status}`;
  item.dataset.status = message.status;
  const metaText = `${message.author.role} · ${message.status}${message.error ? ` · ${message.error}` : ''}`;
  if (meta.textContent !== metaText) meta.textContent = metaText;
  if (text.textContent !== message.text) text.textContent = message.text;
  stop.hidden = !(message.status === 'streaming' && message.author.role === 'agent');
  return item;
}

function render() {
  // Following the end (as a chat does) unless the reader scrolled up to read.
  const following = scrollY + innerHeight >= document.documentElement.scrollHeight - 40;
  const messages = subscription.messages;
  const shown = new Set(messages.map((message) => message.id));
  for (const [id, item] of items) {
    if (!shown.has(id)) {
      item.remove();
      items.delete(id);
    }
  }
  messages.forEach((message, index) => {
    const item = itemFor(message);
    if (list.children[index] !== item) list.insertBefore(item, list.children[index] ?? null);
  });
  // Not while a button is held down: the page would move under the pointer and the click be lost.
  if (following && !pressing) scrollTo(0, document.documentElement.scrollHeight);
}
let pressing = false;
addEventListener('pointerdown', () => (pressing = true));
for (const type of ['pointerup', 'pointercancel']) addEventListener(type, () => (pressing = false));

function showError(error) {
  passing = `${error.code ?? 'ERROR'}: ${error.message}`;
  clearTimeout(passingTimer);
  passingTimer = setTimeout(() => {
    passing = undefined;
    showProblem();
  }, 8_000);
  showProblem();
}

let scheduled = false;
subscription.on((change) => {
  if (change.type === 'error') showError(change);
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    render();
    showState(client.state);
  });
});
render();

const offline = document.querySelector('#offline');
// A browser may restore the box's tick on reload; the connection follows the box from the start.
if (offline.checked) client.disconnect();
offline.addEventListener('change', (event) => (event.target.checked ? client.disconnect() : client.connect()));
document.querySelector('#reload').addEventListener('click', async () => {
  await client.close();
  location.reload();
});
document.querySelector('#forget').addEventListener('click', async () => {
  await client.close();
  await store.remove(conversationId);
  location.reload();
});

// For tests and curious developers.
window.seqlinePane = { client, subscription, store };
