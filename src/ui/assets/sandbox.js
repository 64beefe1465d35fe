// The pattern sandbox: the verdict as you type (POST /api/v1/test-pattern), the offending part of an
// invalid pattern highlighted, and which rules the event reaches with each target's payload drawn
// (POST /api/v1/route).

import { el, append, clear, api, topBar, debounce, pretty } from './common.js';
import { renderSlack } from './slack.js';

const EXAMPLES = [
  ['Any CRITICAL finding', { detail: { 'finding-severity-counts': { CRITICAL: [{ numeric: ['>', 0] }] } } }],
  ['Any completed ECR scan', { source: ['aws.ecr'], 'detail-type': ['ECR Image Scan'], detail: { 'scan-status': ['COMPLETE'] } }],
  ['No CRITICAL finding (absent means zero)', { detail: { 'finding-severity-counts': { CRITICAL: [{ exists: false }] } } }],
  ['5 or more HIGH on production repositories', { detail: { 'repository-name': [{ prefix: 'prod/' }], 'finding-severity-counts': { HIGH: [{ numeric: ['>=', 5] }] } } }],
  ['Failed scans', { 'detail-type': ['ECR Image Scan'], detail: { 'scan-status': ['FAILED'] } }],
  ['Repositories by glob', { detail: { 'repository-name': [{ wildcard: 'payments/*' }] } }],
  ['All but sandboxes', { detail: { 'repository-name': [{ 'anything-but': { prefix: 'sandbox/' } }] } }],
  ['CRITICAL anywhere, or HIGH on prod', { detail: { $or: [{ 'finding-severity-counts': { CRITICAL: [{ numeric: ['>', 0] }] } }, { 'repository-name': [{ prefix: 'prod/' }], 'finding-severity-counts': { HIGH: [{ numeric: ['>', 0] }] } }] } }],
  ['Inspector2 findings with a fix', { source: ['aws.inspector2'], 'detail-type': ['Inspector2 Finding'], detail: { fixAvailable: ['YES'] } }],
];

const $ = (id) => document.getElementById(id);
const patternBox = $('pattern');
const eventBox = $('event');

/** A textarea with a backdrop that can mark one range of its text. */
class Editor {
  constructor(textarea, backdrop) {
    this.t = textarea;
    this.b = backdrop;
    this.range = null;
    textarea.addEventListener('scroll', () => { this.b.scrollTop = this.t.scrollTop; });
    textarea.addEventListener('input', () => { this.range = null; this.draw(); });
    new ResizeObserver(() => this.draw()).observe(textarea);
  }

  mark(range) {
    this.range = range;
    this.draw();
  }

  draw() {
    const text = this.t.value;
    clear(this.b);
    if (this.range) {
      const { start, end } = this.range;
      const bad = text.slice(start, end);
      append(this.b, [
        text.slice(0, start),
        el('mark', { class: bad ? null : 'empty', testid: 'error-highlight' }, bad || '\u200b'),
        text.slice(end),
      ]);
    } else {
      append(this.b, text);
    }
    // A final newline needs a character after it to take up its line.
    append(this.b, ' ');
    this.b.scrollTop = this.t.scrollTop;
  }
}

const patternEditor = new Editor(patternBox, $('pattern-backdrop'));
const eventEditor = new Editor(eventBox, $('event-backdrop'));

function setVerdict(result) {
  const v = $('verdict');
  const text = { match: 'match', nomatch: 'no match', error: 'error' }[result] || '';
  v.textContent = text;
  v.className = 'verdict ' + (result || '');
}

function drawExplain(r) {
  const box = clear($('explain'));
  for (const w of r.warnings || []) box.append(el('div', { class: 'warning' }, `warning: ${w.message} (at ${w.pointer})`));
  const branches = r.branches || [];
  branches.forEach((b, i) => {
    if (branches.length > 1) {
      box.append(el('div', { class: 'branch-title' }, `$or combination ${i + 1} of ${branches.length}: ${b.matched ? 'matches' : 'does not match'}`));
    }
    for (const f of b.fields) {
      box.append(el('div', { class: 'cond ' + (f.held ? 'ok' : 'fail'), testid: 'explain-field' },
        el('span', { class: 'mark' }, f.held ? 'ok' : 'FAIL'),
        el('span', {}, el('span', { class: 'path' }, f.path), ': ', el('span', { class: 'reason' }, f.reason))));
    }
    if (b.inconsistent_arrays) {
      box.append(el('div', { class: 'cond fail' }, el('span', { class: 'mark' }, 'FAIL'),
        el('span', { class: 'reason' }, 'each field holds alone, but only with values from different elements of the same array, which a pattern never combines')));
    }
  });
}

function drawError(err) {
  const box = $('error');
  if (!err) {
    box.hidden = true;
    clear(box);
    patternEditor.mark(null);
    eventEditor.mark(null);
    return;
  }
  const inPattern = err.in === 'pattern';
  const where = [];
  where.push(inPattern ? 'in the pattern' : 'in the event');
  if (err.line) where.push(`line ${err.line}, column ${err.column}`);
  else if (err.pointer) where.push(`at ${err.pointer}`);
  append(clear(box), el('span', { testid: 'error-message' }, err.message), el('span', { class: 'where' }, where.join(', ')));
  box.hidden = false;
  (inPattern ? patternEditor : eventEditor).mark(err.range || null);
  (inPattern ? eventEditor : patternEditor).mark(null);
}

let seq = 0;
let inflight = null;

async function evaluate() {
  const mine = ++seq;
  if (inflight) inflight.abort();
  inflight = new AbortController();
  $('verdict-note').textContent = 'testing…';
  let r;
  try {
    r = await api('/api/v1/test-pattern', { method: 'POST', body: { pattern: patternBox.value, event: eventBox.value }, signal: inflight.signal });
  } catch (e) {
    if (e.name === 'AbortError') return;
    if (mine !== seq) return;
    setVerdict('error');
    drawError({ in: 'pattern', message: e.message });
    $('verdict-note').textContent = '';
    return;
  }
  if (mine !== seq) return;
  $('verdict-note').textContent = r.result === 'error' ? '' : 'updated as you type (Ctrl+Enter tests now)';
  setVerdict(r.result);
  drawError(r.result === 'error' ? r.error : null);
  drawExplain(r.result === 'error' ? { warnings: r.warnings } : r);
  try {
    localStorage.setItem('scanbridge.sandbox.pattern', patternBox.value);
  } catch { /* private mode */ }
}

// ---- which rules match ----

function preview(d) {
  const p = d.preview;
  if (d.error) return el('div', { class: 'banner bad' }, d.error);
  if (!p) return el('div', { class: 'hint' }, 'no preview for this target');
  switch (d.kind) {
    case 'slack':
      return el('div', {}, renderSlack(p.payload),
        el('div', { class: 'slack-fallback hint' }, 'Notification text: ', p.payload && p.payload.text),
        el('details', {}, el('summary', {}, 'Block Kit JSON'), el('pre', { class: 'json' }, pretty(p.payload))));
    case 'email': {
      const frame = el('iframe', { sandbox: '', title: 'HTML part of the email', referrerpolicy: 'no-referrer', testid: 'email-html' });
      frame.srcdoc = p.html;
      const row = (k, v, cls) => [el('dt', {}, k), el('dd', { class: cls }, v)];
      return el('div', { class: 'mail' },
        el('dl', { class: 'mail-head' },
          row('From', p.from), row('To', (p.to || []).join(', ')),
          p.cc && p.cc.length ? row('Cc', p.cc.join(', ')) : null,
          row('Subject', p.subject, 'subject'), row('Message-ID', p.message_id)),
        frame,
        el('details', {}, el('summary', {}, 'Plain-text part'), el('pre', { class: 'text' }, p.text)));
    }
    case 'webhook':
    case 'pagerduty':
    case 'opsgenie':
    case 'teams': {
      const body = typeof p.body === 'string' ? p.body : pretty(p.body);
      const lines = [`${p.method} <the target's URL, not shown>`, `content-type: ${p.content_type}`];
      if (d.kind === 'webhook') lines.push(`idempotency-key: ${d.id}`);
      for (const h of p.headers || []) lines.push(`${h}: ***`);
      if (p.signed) lines.push('webhook-id, webhook-timestamp, webhook-signature: signed at send time');
      return el('div', {}, el('div', { class: 'request-line' }, lines.join('\n').split('\n').map((l) => el('div', {}, l))),
        el('pre', { class: 'json', testid: 'webhook-body' }, body));
    }
    default:
      return el('pre', { class: 'text' }, p.text);
  }
}

function drawRoutes(r) {
  const box = clear($('routes'));
  $('routes-summary').textContent = `${r.rules.length} of ${r.rules_total} rule(s) match; ${r.deliveries} delivery(ies) would be made`;
  if (r.silenced) {
    const s = r.silenced;
    box.append(el('div', { class: 'banner warn', testid: 'silenced' },
      `Silenced by ${s.id} until ${s.expires_at} (${s.comment}; by ${s.created_by}): the daemon would send nothing for this event.`));
  }
  if (!r.rules.length) {
    box.append(el('div', { class: 'empty' }, r.rules_total ? 'No loaded rule matches this event.' : 'No rules are loaded.'));
  }
  for (const rule of r.rules) {
    const deliveries = rule.deliveries.map((d) => el('div', { class: 'delivery', testid: 'delivery' },
      el('div', { class: 'delivery-head' },
        el('span', { class: 'arrow' }, '→'),
        d.topic ? [el('span', { class: 'muted' }, `topic ${d.topic}`), el('span', { class: 'arrow' }, '→')] : null,
        el('span', { class: 'target' }, d.target),
        el('span', { class: 'kind k-' + d.kind }, d.kind),
        el('span', { class: 'faint mono small' }, `delivery ${d.id}`)),
      preview(d)));
    box.append(el('article', { class: 'rule-match', testid: 'rule-match', dataset: { rule: rule.name } },
      el('header', {},
        el('span', { class: 'name' }, rule.name),
        rule.description ? el('span', { class: 'muted' }, rule.description) : null,
        rule.alerting ? el('span', { class: 'chip' }, rule.alerting) : null),
      el('div', { class: 'deliveries' },
        deliveries.length ? deliveries : el('div', { class: 'hint' }, 'No topic subscription accepts this event: nothing is sent.'))));
  }
  for (const t of r.unreached_topics || []) {
    box.append(el('div', { class: 'hint' }, `topic ${t.topic}: no subscription's filter policy matches (${t.subscribers.join(', ')})`));
  }
}

let routeSeq = 0;

async function route() {
  const mine = ++routeSeq;
  let r;
  try {
    r = await api('/api/v1/route', { method: 'POST', body: { event: eventBox.value } });
  } catch (e) {
    if (mine !== routeSeq) return;
    $('routes-summary').textContent = '';
    append(clear($('routes')), el('div', { class: 'empty' }, e.message));
    return;
  }
  if (mine === routeSeq) drawRoutes(r);
}

// ---- wiring ----

const evaluateSoon = debounce(evaluate, 180);
const routeSoon = debounce(route, 400);

patternBox.addEventListener('input', evaluateSoon);
eventBox.addEventListener('input', () => {
  $('sample').value = '';
  evaluateSoon();
  routeSoon();
});
$('run').addEventListener('click', () => { evaluate(); route(); });
for (const box of [patternBox, eventBox]) {
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      evaluate();
    }
  });
}

const starts = new Map();

async function init() {
  await topBar('sandbox');
  const handoff = (k) => {
    try {
      const v = sessionStorage.getItem(k);
      sessionStorage.removeItem(k);
      return v;
    } catch {
      return null;
    }
  };
  let samples = [];
  try {
    samples = (await api('/api/v1/samples')).samples;
  } catch { /* shown by the first evaluation */ }
  for (const s of samples) $('sample').append(el('option', { value: s.name }, s.title));
  $('sample').addEventListener('change', () => {
    const s = samples.find((x) => x.name === $('sample').value);
    if (!s) return;
    eventBox.value = pretty(s.event);
    eventEditor.draw();
    evaluate();
    route();
  });

  const examples = el('optgroup', { label: 'Examples' });
  EXAMPLES.forEach(([label, p], i) => {
    starts.set('x' + i, pretty(p));
    examples.append(el('option', { value: 'x' + i }, label));
  });
  $('start').append(examples);
  try {
    const rules = (await api('/api/v1/rules')).rules;
    if (rules.length) {
      const group = el('optgroup', { label: 'Loaded rules' });
      for (const r of rules) {
        starts.set('r:' + r.name, pretty(r.pattern));
        group.append(el('option', { value: 'r:' + r.name }, r.name));
      }
      $('start').append(group);
    }
  } catch { /* no rules to offer */ }
  $('start').addEventListener('change', () => {
    const p = starts.get($('start').value);
    if (p === undefined) return;
    patternBox.value = p;
    patternEditor.mark(null);
    evaluate();
  });

  const event = handoff('scanbridge.sandbox.event');
  if (event) eventBox.value = event;
  else if (samples.length) {
    $('sample').value = samples[0].name;
    eventBox.value = pretty(samples[0].event);
  }
  let saved = null;
  try {
    saved = localStorage.getItem('scanbridge.sandbox.pattern');
  } catch { /* private mode */ }
  patternBox.value = handoff('scanbridge.sandbox.pattern') || saved || starts.get('x0');
  patternEditor.draw();
  eventEditor.draw();
  evaluate();
  route();
}

init();
