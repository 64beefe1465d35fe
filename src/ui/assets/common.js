// Shared by the pages: building DOM safely, talking to the admin API, the top bar, time and toasts.
//
// Safety rule of the whole UI: values from events (and from the API in general) enter the page only as
// text nodes or textContent, never as HTML; links are built only from http(s) URLs (safeUrl).

/** Builds an element. props: class, text, testid, on<event>, dataset, or attributes; children: nodes or text. */
export function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else if (k === 'testid') e.dataset.testid = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'href' || k === 'src') {
      const u = safeUrl(v);
      if (u) e.setAttribute(k, u);
    } else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

/** Appends children (nodes, strings, arrays; null and false skipped) as nodes or text. */
export function append(parent, ...children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

/** The URL if it is http(s), mailto, or one of this server's paths; otherwise null. */
export function safeUrl(u) {
  if (typeof u !== 'string') return null;
  if (u.startsWith('/') && !u.startsWith('//')) return u;
  try {
    const url = new URL(u);
    return ['http:', 'https:', 'mailto:'].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

let sessionPromise = null;

/** What /ui/session says: {mode, auth_required, signed_in, csrf}. */
export function session() {
  if (!sessionPromise) {
    sessionPromise = fetch('/ui/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then((r) => r.json())
      .catch(() => ({ mode: 'daemon', auth_required: false, signed_in: false, csrf: null }));
  }
  return sessionPromise;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the admin API: api('/api/v1/x', {method, body, signal}); throws ApiError with the server's words. */
export async function api(path, opts = {}) {
  const s = await session();
  const method = opts.method || 'GET';
  const headers = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && s.csrf) headers['X-CSRF-Token'] = s.csrf;
  const r = await fetch(path, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    credentials: 'same-origin',
    signal: opts.signal,
  });
  let data = null;
  try {
    data = await r.json();
  } catch {
    data = null;
  }
  if (r.status === 401 && s.auth_required) {
    location.href = '/ui/login?next=' + encodeURIComponent(document.body.dataset.page || '');
  }
  if (!r.ok) throw new ApiError(r.status, (data && data.error) || r.statusText || 'request failed');
  return data;
}

/** Draws the top bar into <header id="top">. */
export async function topBar(active) {
  const s = await session();
  const top = document.getElementById('top');
  const link = (name, href, label) => el('a', { href, class: name === active ? 'active' : null, testid: 'nav-' + name }, label);
  const nav = el('nav', { class: 'nav' }, link('sandbox', '/ui/sandbox', 'Sandbox'), s.mode === 'daemon' ? link('console', '/ui/console', 'Console') : null);
  let who;
  if (s.mode === 'sandbox') who = el('span', {}, 'sandbox only: no store, nothing is sent');
  else if (!s.auth_required) who = el('span', {}, 'open: no token configured');
  else {
    const out = el('button', { class: 'btn small', type: 'button', testid: 'sign-out' }, 'Sign out');
    out.addEventListener('click', async () => {
      try {
        await api('/ui/logout', { method: 'POST' });
      } finally {
        location.href = '/ui/login';
      }
    });
    who = [el('span', {}, 'signed in with a token'), out];
  }
  append(clear(top), el('div', { class: 'top-inner' },
    el('a', { class: 'brand', href: s.mode === 'daemon' ? '/ui/console' : '/ui/sandbox' },
      el('img', { src: '/ui/assets/icon.svg', alt: '', width: 24, height: 24 }), 'scanbridge'),
    nav,
    el('div', { class: 'who' }, who)));
  return s;
}

/** `2026-11-20 13:07:02Z` for milliseconds since the epoch. */
export function when(ms) {
  if (ms === null || ms === undefined) return '-';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** `3 min ago` / `in 20 s` relative to now. */
export function ago(ms) {
  if (ms === null || ms === undefined) return '';
  const d = Math.round((ms - Date.now()) / 1000);
  const a = Math.abs(d);
  if (a < 1) return 'now';
  const t = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return d > 0 ? `in ${t}` : `${t} ago`;
}

/** A time cell: absolute UTC with the relative time under it. */
export function timeCell(ms) {
  return el('div', { class: 'nowrap' }, el('div', {}, when(ms)), el('div', { class: 'sub' }, ago(ms)));
}

let toastTimer = null;

/** A short message in the corner. */
export function toast(message, bad = false) {
  let t = document.querySelector('.toast');
  if (!t) {
    t = el('div', { class: 'toast', role: 'status', testid: 'toast' });
    document.body.append(t);
  }
  t.className = bad ? 'toast bad' : 'toast';
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

/** fn debounced by ms. */
export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/** JSON text of a value for people: indented, with short arrays and objects kept on one line. */
export function pretty(v, indent = 0) {
  const flat = (x) => {
    if (Array.isArray(x)) return '[' + x.map(flat).join(', ') + ']';
    if (x && typeof x === 'object') return '{' + Object.entries(x).map(([k, y]) => JSON.stringify(k) + ': ' + flat(y)).join(', ') + '}';
    return JSON.stringify(x);
  };
  const one = flat(v);
  if (!v || typeof v !== 'object' || indent + one.length <= 76) return one;
  const pad = ' '.repeat(indent + 2);
  const end = ' '.repeat(indent);
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return '[\n' + v.map((x) => pad + pretty(x, indent + 2)).join(',\n') + '\n' + end + ']';
  }
  const entries = Object.entries(v);
  if (!entries.length) return '{}';
  return '{\n' + entries.map(([k, x]) => pad + JSON.stringify(k) + ': ' + pretty(x, indent + 2)).join(',\n') + '\n' + end + '}';
}
