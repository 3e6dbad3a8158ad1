/**
 * `/docs`: the OpenAPI description as a page. Self-contained (no CDN, no build step), so it works
 * offline and behind any proxy; it renders `v1/openapi.json` relative to itself, with text
 * nodes only.
 */
export const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Seqline API</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 70rem; padding: 1rem 1.5rem 4rem; color: #1d2330; }
  h1 { margin-bottom: 0; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #d8dce5; }
  code, pre { font: 13px/1.45 ui-monospace, monospace; }
  pre { background: #f4f6fa; padding: .75rem; overflow-x: auto; border-radius: 4px; }
  details { border: 1px solid #d8dce5; border-radius: 4px; margin: .5rem 0; }
  details > summary { cursor: pointer; padding: .5rem .75rem; }
  details > div { padding: 0 .75rem .75rem; }
  .method { display: inline-block; min-width: 3.5rem; font-weight: 600; text-transform: uppercase; }
  .get { color: #1f6feb; } .post { color: #1a7f37; }
  table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
  th, td { text-align: left; vertical-align: top; border-bottom: 1px solid #e6e9ef; padding: .3rem .5rem; }
  .muted { color: #5b6474; }
</style>
</head>
<body>
<main id="docs"><p class="muted">Loading the description…</p></main>
<script type="module">
  const root = document.querySelector('#docs');
  const source = location.pathname.replace(/docs\\/?$/, '') + 'v1/openapi.json';
  const SCHEMA_PREFIX = '#/components/schemas/';

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    for (const child of children) if (child !== undefined && child !== null) node.append(child);
    return node;
  }

  /** JSON, with every schema reference a link to that schema. */
  function json(value) {
    const pre = el('pre');
    const write = (item, indent) => {
      if (Array.isArray(item)) {
        if (!item.length) return pre.append('[]');
        pre.append('[\\n');
        item.forEach((entry, i) => { pre.append(indent + '  '); write(entry, indent + '  '); pre.append(i < item.length - 1 ? ',\\n' : '\\n'); });
        return pre.append(indent + ']');
      }
      if (item && typeof item === 'object') {
        const entries = Object.entries(item);
        if (!entries.length) return pre.append('{}');
        pre.append('{\\n');
        entries.forEach(([key, entry], i) => {
          pre.append(indent + '  ' + JSON.stringify(key) + ': ');
          if (key === '$ref' && typeof entry === 'string' && entry.startsWith(SCHEMA_PREFIX)) pre.append(el('a', { href: '#schema-' + entry.slice(SCHEMA_PREFIX.length) }, JSON.stringify(entry)));
          else write(entry, indent + '  ');
          pre.append(i < entries.length - 1 ? ',\\n' : '\\n');
        });
        return pre.append(indent + '}');
      }
      pre.append(JSON.stringify(item));
    };
    write(value, '');
    return pre;
  }

  /** Text with \`code\` spans, as the description writes them. */
  function prose(tag, text) {
    const node = el(tag);
    text.split('\x60').forEach((part, i) => node.append(i % 2 ? el('code', {}, part) : part));
    return node;
  }

  function schemaLink(schema) {
    const name = schema.$ref.slice(SCHEMA_PREFIX.length);
    return el('a', { href: '#schema-' + name }, name);
  }

  /** A named schema as a link; an error answer as its schema and codes; anything else as JSON. */
  function schemaCell(schema) {
    if (schema && schema.$ref && schema.$ref.startsWith(SCHEMA_PREFIX)) return schemaLink(schema);
    const codes = schema && schema.allOf && schema.allOf[1] && schema.allOf[1].properties && schema.allOf[1].properties.code;
    if (codes && schema.allOf[0].$ref) {
      const cell = el('span', {}, schemaLink(schema.allOf[0]), ', code ');
      codes.enum.forEach((code, i) => cell.append(i ? ' or ' : '', el('code', {}, code)));
      return cell;
    }
    if (schema && Object.keys(schema).every((key) => typeof schema[key] !== 'object')) return el('code', {}, JSON.stringify(schema));
    return json(schema);
  }

  function credentials(doc, security) {
    if (!security.length) return 'none';
    return security.map((requirement) => Object.keys(requirement).map((name) => {
      const scheme = doc.components.securitySchemes[name];
      return scheme.type === 'http' ? 'Authorization: Bearer <token>' : scheme.in === 'query' ? '?' + scheme.name + '=<token>' : scheme.name + ': <key>';
    }).join(' and ')).join(', or ') + ' (with authentication on)';
  }

  function operation(doc, path, method, op) {
    const body = el('div');
    if (op.description) body.append(prose('p', op.description));
    body.append(el('p', {}, el('strong', {}, 'Credentials: '), credentials(doc, op.security)));
    if (op.parameters) {
      const table = el('table', {}, el('tr', {}, el('th', {}, 'parameter'), el('th', {}, 'in'), el('th', {}, 'schema'), el('th', {}, 'meaning')));
      for (const p of op.parameters) table.append(el('tr', {}, el('td', {}, el('code', {}, p.name), p.required ? ' (required)' : ''), el('td', {}, p.in), el('td', {}, schemaCell(p.schema)), prose('td', p.description || '')));
      body.append(table);
    }
    if (op.requestBody) {
      const media = op.requestBody.content['application/json'];
      body.append(el('p', {}, el('strong', {}, 'Body: '), schemaCell(media.schema)));
      if (media.example !== undefined) body.append(json(media.example));
    }
    const responses = el('table', {}, el('tr', {}, el('th', {}, 'status'), el('th', {}, 'meaning'), el('th', {}, 'body')));
    for (const [status, response] of Object.entries(op.responses)) {
      const cell = el('td');
      for (const [type, media] of Object.entries(response.content || {})) cell.append(el('div', { class: 'muted' }, type), schemaCell(media.schema));
      responses.append(el('tr', {}, el('td', {}, status), prose('td', response.description), cell));
    }
    body.append(responses);
    const summary = el('summary', {}, el('span', { class: 'method ' + method }, method), ' ', el('code', {}, path), ' ', el('span', { class: 'muted' }, op.summary));
    return el('details', { id: op.operationId }, summary, body);
  }

  function render(doc) {
    const page = [el('h1', {}, doc.info.title + ' API'), el('p', { class: 'muted' }, 'OpenAPI ' + doc.openapi + ', version ' + doc.info.version + ' · ', el('a', { href: source }, 'openapi.json'))];
    for (const paragraph of doc.info.description.split('\\n\\n')) page.push(prose('p', paragraph));
    for (const tag of doc.tags) {
      const about = prose('p', tag.description);
      about.className = 'muted';
      page.push(el('h2', {}, tag.name), about);
      for (const [path, item] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(item)) if (op.tags.includes(tag.name)) page.push(operation(doc, path, method, op));
      }
    }
    page.push(el('h2', {}, 'schemas'));
    for (const [name, schema] of Object.entries(doc.components.schemas)) page.push(el('details', { id: 'schema-' + name }, el('summary', {}, el('code', {}, name)), el('div', {}, json(schema))));
    root.replaceChildren(...page);
    const target = location.hash && document.getElementById(location.hash.slice(1));
    if (target) target.scrollIntoView();
  }

  addEventListener('hashchange', () => {
    const target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === 'DETAILS') target.open = true;
  });

  fetch(source)
    .then((response) => { if (!response.ok) throw new Error(source + ' answered ' + response.status); return response.json(); })
    .then(render)
    .catch((error) => root.replaceChildren(el('p', {}, 'Could not load the description: ' + error.message)));
</script>
</body>
</html>
`;
