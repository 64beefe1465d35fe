// Draws a Slack message (Block Kit) as Slack draws it: header, sections with mrkdwn text and fields,
// context lines, action buttons, dividers. Everything is built from DOM nodes and text; mrkdwn is
// parsed into nodes (bold, italic, strike, code, code blocks, quotes, links), never into HTML.

import { el, safeUrl } from './common.js';

/** Slack's escaping: the sender writes &amp; &lt; &gt; for & < >. */
function unescapeSlack(s) {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

const INLINE = [
  // `code`
  { re: /`([^`\n]+)`/y, make: (m) => el('code', {}, unescapeSlack(m[1])) },
  // <url|label>, <url>, <!here>, <@U123>
  {
    re: /<([^<>\n]+)>/y,
    make: (m) => {
      const [target, label] = m[1].split('|', 2);
      if (target.startsWith('!')) return el('b', {}, '@' + target.slice(1).split('^')[0]);
      if (target.startsWith('@') || target.startsWith('#')) return el('b', {}, target);
      const url = safeUrl(unescapeSlack(target));
      const raw = label !== undefined ? label : target;
      return url ? el('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, inline(raw)) : document.createTextNode(unescapeSlack(raw));
    },
  },
  // *bold*, _italic_, ~strike~ (at word boundaries, as Slack requires)
  { re: /\*(?!\s)([^*\n]+?)\*(?![\w*])/y, boundary: true, make: (m) => el('b', {}, inline(m[1])) },
  { re: /_(?!\s)([^_\n]+?)_(?![\w_])/y, boundary: true, make: (m) => el('i', {}, inline(m[1])) },
  { re: /~(?!\s)([^~\n]+?)~(?![\w~])/y, boundary: true, make: (m) => el('s', {}, inline(m[1])) },
];

/** Parses one line of mrkdwn into nodes. */
function inline(text) {
  const out = [];
  let plain = '';
  let i = 0;
  const flush = () => {
    if (plain) out.push(document.createTextNode(unescapeSlack(plain)));
    plain = '';
  };
  while (i < text.length) {
    let hit = null;
    for (const rule of INLINE) {
      if (rule.boundary && i > 0 && /[\w]/.test(text[i - 1])) continue;
      rule.re.lastIndex = i;
      const m = rule.re.exec(text);
      if (m) {
        hit = { m, rule };
        break;
      }
    }
    if (hit) {
      flush();
      out.push(hit.rule.make(hit.m));
      i += hit.m[0].length;
    } else {
      plain += text[i];
      i += 1;
    }
  }
  flush();
  return out;
}

/** Parses mrkdwn (several lines, ``` blocks, > quotes) into nodes. */
export function mrkdwn(text) {
  const out = [];
  const parts = String(text).split('```');
  parts.forEach((part, n) => {
    if (n % 2 === 1) {
      out.push(el('pre', {}, unescapeSlack(part.replace(/^\n/, ''))));
      return;
    }
    const lines = part.split('\n');
    lines.forEach((line, k) => {
      if (line.startsWith('&gt;') || line.startsWith('>')) {
        out.push(el('blockquote', {}, inline(line.replace(/^(&gt;|>)\s?/, ''))));
        return;
      }
      out.push(...inline(line));
      if (k < lines.length - 1) out.push(el('br'));
    });
  });
  return out;
}

/** A text object (plain_text or mrkdwn). */
function textObject(t) {
  if (!t || typeof t.text !== 'string') return [];
  return t.type === 'mrkdwn' ? mrkdwn(t.text) : [document.createTextNode(t.text)];
}

function block(b) {
  switch (b && b.type) {
    case 'header':
      return el('div', { class: 'blk-header' }, textObject(b.text));
    case 'section': {
      const parts = [];
      if (b.text) parts.push(el('div', {}, textObject(b.text)));
      if (Array.isArray(b.fields)) parts.push(el('div', { class: 'blk-fields' }, b.fields.map((f) => el('div', {}, textObject(f)))));
      return el('div', { class: 'blk-section' }, parts);
    }
    case 'context':
      return el('div', { class: 'blk-context' }, (b.elements || []).map((e) => el('span', {}, e.type === 'image' ? '' : textObject(e))));
    case 'actions':
      return el('div', { class: 'blk-actions' }, (b.elements || []).map((e) => {
        const label = textObject(e.text);
        const url = safeUrl(e.url);
        return url ? el('a', { class: 'btn-slack', href: url, target: '_blank', rel: 'noopener noreferrer' }, label) : el('span', { class: 'btn-slack' }, label);
      }));
    case 'divider':
      return el('hr', { class: 'blk-divider' });
    default:
      return el('div', { class: 'unsupported' }, `[${(b && b.type) || 'unknown'} block]`);
  }
}

/** The whole message: {text, blocks}. */
export function renderSlack(payload) {
  const blocks = Array.isArray(payload && payload.blocks) ? payload.blocks : [];
  const body = blocks.length ? blocks.map(block) : mrkdwn((payload && payload.text) || '');
  const now = new Date();
  const hhmm = `${String(now.getHours()).padStart(2, '0')}:${String(now.getMinutes()).padStart(2, '0')}`;
  return el('div', { class: 'slack', testid: 'slack-message' },
    el('div', { class: 'avatar' }, 'sb'),
    el('div', {},
      el('div', { class: 'who-line' }, el('span', { class: 'sender' }, 'scanbridge'), el('span', { class: 'app' }, 'APP'), el('span', { class: 'time' }, hhmm)),
      body));
}
