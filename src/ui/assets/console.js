// The on-call console: recent events and what became of each delivery, dead letters (redrive),
// silences (add, expire), suppressed notifications, and the loaded rules with the last reload.
// Everything comes from the admin API; it refreshes itself every few seconds.

import { el, append, clear, api, topBar, timeCell, when, ago, toast, pretty } from './common.js';

const $ = (id) => document.getElementById(id);
const TABS = ['events', 'deadletters', 'silences', 'suppressed', 'rules'];
const REFRESH_MS = 5000;
const expanded = new Set();

// ---- deliveries ----

const LABEL = {
  pending: 'queued',
  retrying: 'retrying',
  delivered: 'delivered',
  grouped: 'in digest group',
  in_digest: 'sent in digest',
  dead_letter: 'dead letter',
  suppressed: 'suppressed',
};

function pill(d, withTarget = true) {
  const label = d.status === 'suppressed' ? `suppressed: ${d.reason}` : LABEL[d.status] || d.status;
  return el('span', { class: 'pill ' + d.status, testid: 'delivery-status', dataset: { status: d.status, target: d.target }, title: `${d.rule} → ${d.target}: ${describe(d)}` },
    withTarget ? `${d.target} · ${label}` : label);
}

function describe(d) {
  switch (d.status) {
    case 'pending':
      return `queued, due ${ago(d.next_attempt_at_ms)}`;
    case 'retrying':
      return `${d.attempts} failed attempt(s); next attempt ${ago(d.next_attempt_at_ms)} (${when(d.next_attempt_at_ms)})`;
    case 'delivered':
      return `delivered ${ago(d.at_ms)} (${when(d.at_ms)}) at attempt ${d.attempts}`;
    case 'grouped':
      return `waiting in a digest group since ${when(d.at_ms)}`;
    case 'in_digest':
      return `sent in the digest event ${d.digest_event_id} (${when(d.at_ms)})`;
    case 'dead_letter':
      return `dead-lettered ${ago(d.at_ms)} after ${d.attempts} attempt(s)`;
    case 'suppressed':
      return `not sent on purpose (${d.reason}) ${ago(d.at_ms)}`;
    default:
      return d.status;
  }
}

function why(d) {
  if (d.status === 'retrying') return d.last_error ? `last error: ${d.last_error}` : '';
  if (d.status === 'dead_letter') return d.reason;
  if (d.status === 'suppressed') return d.detail;
  return '';
}

function deliveriesTable(list) {
  if (!list.length) return el('div', { class: 'hint' }, 'No rule matched this event: nothing to deliver.');
  return el('table', { class: 'list' },
    el('thead', {}, el('tr', {}, ['Rule', 'Target', 'State', 'What happened', 'Delivery id'].map((h) => el('th', {}, h)))),
    el('tbody', {}, list.map((d) => el('tr', { testid: 'delivery-row', dataset: { status: d.status } },
      el('td', { class: 'mono nowrap' }, d.rule),
      el('td', { class: 'mono nowrap' }, d.target),
      el('td', {}, pill(d, false)),
      el('td', { class: 'reason' }, el('div', {}, describe(d)), why(d) ? el('div', { class: 'sub', testid: 'delivery-why' }, why(d)) : null),
      el('td', { class: 'mono small faint' }, d.id)))));
}

// ---- events ----

function toSandbox(eventJson, pattern) {
  try {
    if (eventJson) sessionStorage.setItem('scanbridge.sandbox.event', eventJson);
    if (pattern) sessionStorage.setItem('scanbridge.sandbox.pattern', pattern);
  } catch { /* storage off */ }
  location.href = '/ui/sandbox';
}

async function detailRow(ev, cols) {
  const body = el('div', {}, el('div', { class: 'hint' }, 'loading…'));
  const row = el('tr', { class: 'detail', testid: 'event-detail' }, el('td', { colspan: cols }, body));
  try {
    const full = await api('/api/v1/events/' + encodeURIComponent(ev.id));
    const text = pretty(full.event);
    append(clear(body),
      deliveriesTable(full.deliveries),
      el('div', { class: 'form-actions' },
        el('span', { class: 'mono small faint' }, `event ${full.id}`),
        el('button', { type: 'button', class: 'btn small', onclick: () => toSandbox(text) }, 'Open in sandbox')),
      el('details', {}, el('summary', {}, 'Event JSON'), el('pre', { class: 'json' }, text)));
  } catch (e) {
    append(clear(body), el('div', { class: 'banner bad' }, e.message));
  }
  return row;
}

let olderCursor = null;

function eventRow(ev, tbody) {
  const tr = el('tr', { class: 'row' + (expanded.has(ev.id) ? ' open' : ''), testid: 'event-row', dataset: { id: ev.id } },
    el('td', {}, timeCell(ev.received_at_ms)),
    el('td', {}, el('div', { class: 'headline' }, ev.headline), el('div', { class: 'sub' }, `${ev.detail_type} from ${ev.source}`)),
    el('td', {}, ev.deliveries.length ? el('div', { class: 'pills' }, ev.deliveries.map((d) => pill(d))) : el('span', { class: 'faint' }, 'no rule matched')));
  tr.addEventListener('click', async () => {
    const next = tr.nextElementSibling;
    if (expanded.has(ev.id)) {
      expanded.delete(ev.id);
      tr.classList.remove('open');
      if (next && next.classList.contains('detail')) next.remove();
      return;
    }
    expanded.add(ev.id);
    tr.classList.add('open');
    tr.after(await detailRow(ev, 3));
  });
  tbody.append(tr);
  if (expanded.has(ev.id)) detailRow(ev, 3).then((d) => tr.after(d));
}

async function loadEvents() {
  const r = await api('/api/v1/events?limit=50');
  const tbody = clear($('events'));
  if (!r.events.length) tbody.append(el('tr', {}, el('td', { colspan: 3 }, el('div', { class: 'empty' }, 'No events yet. Send one: scanbridge send EVENT.json'))));
  for (const ev of r.events) eventRow(ev, tbody);
  olderCursor = r.next;
  $('events-more').hidden = !olderCursor;
}

$('events-more').addEventListener('click', async () => {
  if (!olderCursor) return;
  const r = await api('/api/v1/events?limit=50&before=' + encodeURIComponent(olderCursor));
  for (const ev of r.events) eventRow(ev, $('events'));
  olderCursor = r.next;
  $('events-more').hidden = !olderCursor;
});

// ---- dead letters ----

async function redrive(path, what) {
  try {
    const r = await api(path, { method: 'POST' });
    toast(`Redriven: ${r.redriven} ${what}; due now`);
  } catch (e) {
    toast(e.message, true);
  }
  refresh();
}

async function loadDeadLetters() {
  const list = (await api('/api/v1/deadletters')).deadletters.slice().reverse();
  const tbody = clear($('deadletters'));
  $('redrive-all').disabled = !list.length;
  if (!list.length) tbody.append(el('tr', {}, el('td', { colspan: 6 }, el('div', { class: 'empty' }, 'No dead letters. Every delivery was delivered, is still being retried, or was suppressed on purpose.'))));
  for (const d of list) {
    tbody.append(el('tr', { testid: 'deadletter-row', dataset: { id: d.id } },
      el('td', {}, timeCell(d.failed_at_ms)),
      el('td', { class: 'mono' }, `${d.rule} → ${d.target}`),
      el('td', {}, String(d.attempts)),
      el('td', { class: 'reason', testid: 'deadletter-reason' }, d.reason),
      el('td', { class: 'mono small faint' }, d.event_id),
      el('td', {}, el('button', { type: 'button', class: 'btn small', testid: 'redrive', dataset: { id: d.id }, onclick: () => redrive(`/api/v1/deadletters/${encodeURIComponent(d.id)}/redrive`, 'delivery') }, 'Redrive'))));
  }
}

$('redrive-all').addEventListener('click', () => redrive('/api/v1/deadletters/redrive', 'delivery(ies)'));

// ---- silences ----

async function loadSilences() {
  const all = $('silences-all').checked;
  const list = (await api('/api/v1/silences' + (all ? '?all=true' : ''))).silences;
  const tbody = clear($('silences'));
  if (!list.length) tbody.append(el('tr', {}, el('td', { colspan: 6 }, el('div', { class: 'empty' }, all ? 'No silences.' : 'No silence in force.'))));
  for (const s of list) {
    tbody.append(el('tr', { testid: 'silence-row', dataset: { id: s.id } },
      el('td', { class: 'mono' }, s.id),
      el('td', { class: 'mono reason' }, s.matchers),
      el('td', { class: 'reason' }, s.comment),
      el('td', {}, s.created_by),
      el('td', {}, el('div', { class: 'nowrap' }, s.expires_at), el('div', { class: 'sub' }, s.active ? ago(s.expires_at_ms) : 'expired')),
      el('td', {}, s.active ? el('button', { type: 'button', class: 'btn small danger', testid: 'expire', dataset: { id: s.id }, onclick: () => expire(s.id) }, 'Expire') : el('span', { class: 'pill expired' }, 'expired'))));
  }
}

async function expire(id) {
  try {
    await api(`/api/v1/silences/${encodeURIComponent(id)}/expire`, { method: 'POST' });
    toast(`Silence ${id} expired`);
  } catch (e) {
    toast(e.message, true);
  }
  refresh();
}

$('silences-all').addEventListener('change', loadSilences);

$('silence-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData($('silence-form'));
  const text = (k) => String(f.get(k) || '').trim();
  const spec = {
    matchers: text('matchers').split('\n').map((m) => m.trim()).filter(Boolean),
    expires: text('expires'),
    comment: text('comment'),
  };
  for (const k of ['pattern', 'cve', 'package', 'repository', 'author']) if (text(k)) spec[k] = text(k);
  const err = $('silence-error');
  err.hidden = true;
  try {
    const r = await api('/api/v1/silences', { method: 'POST', body: spec });
    toast(`Silence ${r.silence.id} in force until ${r.silence.expires_at}`);
    for (const k of ['matchers', 'pattern', 'comment', 'cve', 'package', 'repository']) $('silence-form').elements[k].value = '';
  } catch (ex) {
    err.textContent = ex.message;
    err.hidden = false;
  }
  refresh();
});

// ---- suppressed ----

async function loadSuppressed() {
  const list = (await api('/api/v1/suppressed?limit=200')).suppressed;
  const tbody = clear($('suppressed'));
  if (!list.length) tbody.append(el('tr', {}, el('td', { colspan: 5 }, el('div', { class: 'empty' }, 'Nothing suppressed.'))));
  for (const s of list) {
    tbody.append(el('tr', { testid: 'suppressed-row' },
      el('td', {}, timeCell(s.at_ms)),
      el('td', { class: 'mono' }, `${s.rule} → ${s.target}`),
      el('td', {}, el('span', { class: 'pill suppressed' }, s.reason)),
      el('td', { class: 'reason' }, s.detail),
      el('td', { class: 'mono small faint' }, s.event_id)));
  }
}

// ---- rules ----

function reloadBanner(reload) {
  const b = $('reload-banner');
  if (reload && !reload.ok) {
    append(clear(b), el('strong', {}, `The last reload of the rules failed (${when(reload.at_ms)}); the rules loaded ${when(reload.loaded_at_ms)} keep running:`),
      el('ul', {}, reload.errors.map((e) => el('li', { class: 'mono' }, e))));
    b.className = 'banner bad';
    b.hidden = false;
  } else {
    b.hidden = true;
  }
}

async function loadRules() {
  const r = await api('/api/v1/rules');
  reloadBanner(r.reload);
  $('rules-dir').textContent = r.reload.builtin
    ? 'the built-in example rules (no rules directory)'
    : `from ${r.dir}, loaded ${when(r.reload.loaded_at_ms)}`;
  const box = clear($('rules'));
  if (!r.rules.length) box.append(el('div', { class: 'empty' }, 'No rules loaded.'));
  for (const rule of r.rules) {
    const text = pretty(rule.pattern);
    box.append(el('article', { class: 'rule-card', testid: 'rule-card', dataset: { rule: rule.name } },
      el('div', { class: 'title' },
        el('span', { class: 'name' }, rule.name),
        rule.description ? el('span', { class: 'muted' }, rule.description) : null,
        el('span', { class: 'spacer' }),
        el('button', { type: 'button', class: 'btn small', onclick: () => toSandbox(null, text) }, 'Try in sandbox')),
      el('div', { class: 'sub' }, rule.file),
      el('div', { class: 'form-actions' },
        el('span', { class: 'hint' }, 'targets'),
        rule.targets.map((t) => el('span', { class: 'chip' }, `${t.target} (${t.kind}${t.transformed ? ', transformed' : ''})`)),
        rule.alerting ? el('span', { class: 'hint' }, rule.alerting) : null),
      el('pre', { class: 'json' }, text)));
  }
}

// ---- status, tabs, refresh ----

function stat(label, value, cls, testid) {
  return el('div', { class: 'stat ' + (cls || ''), testid }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, String(value)));
}

async function loadStatus() {
  const s = await api('/api/v1/status');
  const c = s.counts;
  append(clear($('stats')),
    stat('Queued deliveries', c.outbox, null, 'stat-queue'),
    stat('Retrying', c.retrying, c.retrying ? 'warn' : null, 'stat-retrying'),
    stat('Dead letters', c.dead_letters, c.dead_letters ? 'bad' : null, 'stat-deadletters'),
    stat('Silences in force', s.silences_active, null, 'stat-silences'),
    stat('Rules loaded', s.rules, s.reload_ok ? null : 'bad', 'stat-rules'));
  $('count-deadletters').textContent = String(c.dead_letters);
  $('count-deadletters').className = 'count' + (c.dead_letters ? ' bad' : '');
  $('count-silences').textContent = String(s.silences_active);
  $('count-rules').textContent = String(s.rules);
  if (s.reload_ok) $('reload-banner').hidden = true;
  else if (current() !== 'rules') loadRules().catch(() => {});
}

const LOADERS = { events: loadEvents, deadletters: loadDeadLetters, silences: loadSilences, suppressed: loadSuppressed, rules: loadRules };

function current() {
  const t = location.hash.replace('#', '');
  return TABS.includes(t) ? t : 'events';
}

function showTab() {
  const t = current();
  for (const name of TABS) {
    $('panel-' + name).hidden = name !== t;
    document.querySelector(`[data-tab="${name}"]`).classList.toggle('active', name === t);
  }
  refresh();
}

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    await Promise.all([loadStatus(), LOADERS[current()]()]);
    $('refreshed').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $('refreshed').textContent = `not updated: ${e.message}`;
  } finally {
    refreshing = false;
  }
}

async function init() {
  await topBar('console');
  window.addEventListener('hashchange', showTab);
  showTab();
  setInterval(() => {
    const typing = document.activeElement && $('silence-form').contains(document.activeElement);
    if (document.visibilityState === 'visible' && !typing) refresh();
  }, REFRESH_MS);
}

init();
