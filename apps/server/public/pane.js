import { KeyValueCursorStore, SeqlineClient } from '/sdk/seqline-client.mjs';

const params = new URLSearchParams(location.search);
const conversationId = params.get('conversation') ?? 'demo';
const pane = params.get('pane') ?? 'A';
document.querySelector('#name').textContent = `Device ${pane}`;

// Each pane keeps its own cursor in localStorage, as an app on its own device would.
const store = new KeyValueCursorStore(localStorage, `seqline-demo-${pane}`);
const client = new SeqlineClient({ url: location.origin, store });
const subscription = client.subscribe(conversationId);

const badge = document.querySelector('#state');
client.onStateChange((state) => {
  badge.textContent = state;
  badge.dataset.state = state;
});

const list = document.querySelector('#messages');
function render() {
  list.replaceChildren(
    ...subscription.messages.map((message) => {
      const item = document.createElement('li');
      item.className = `message ${message.author.role} ${message.status}`;
      item.dataset.id = message.id;
      item.dataset.status = message.status;
      const meta = document.createElement('div');
      meta.className = 'meta';
      meta.textContent = `${message.author.role} · ${message.status}`;
      const text = document.createElement('div');
      text.className = 'text';
      text.textContent = message.text;
      item.append(meta, text);
      if (message.status === 'streaming' && message.author.role === 'agent') {
        const stop = document.createElement('button');
        stop.textContent = 'stop';
        stop.onclick = () => client.cancel(conversationId, message.id);
        item.append(stop);
      }
      return item;
    }),
  );
}
let scheduled = false;
subscription.on(() => {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    render();
  });
});
render();

document.querySelector('#offline').addEventListener('change', (event) => (event.target.checked ? client.disconnect() : client.connect()));
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
