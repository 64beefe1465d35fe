// The sandbox in a real browser: the verdict follows typing without a page load, an invalid
// pattern's offending node is highlighted with AWS's message, "which rules match" draws each target's
// payload, a hostile event stays text, and no secret reaches the page.
import { run, check, waitText, typeInto, shot, BASE } from './lib.mjs';

const SECRETS = ['SLACKSECRET', 'HOOKSECRET', 'HEADERSECRET'];

await run('sandbox', async (page) => {
  await page.goto(BASE + '/ui/sandbox');
  const verdict = page.getByTestId('verdict');
  const pattern = page.getByTestId('pattern');
  const explain = page.getByTestId('explain');

  // The default pattern (any CRITICAL finding) on the default sample (2 CRITICAL) matches.
  await waitText(verdict, 'match', 'the first verdict');
  await waitText(explain, /detail\.finding-severity-counts\.CRITICAL: 2 satisfies numeric > 0/, 'the first explanation');
  await page.getByTestId('rule-match').first().waitFor();
  await shot(page, 'ui-sandbox.png');
  await page.evaluate(() => { window.__sameDocument = true; });

  // Typing a pattern the event fails: "no match", with test-pattern --explain's words.
  await typeInto(page, pattern, '{"source": ["aws.inspector2"]}');
  await waitText(verdict, 'no match', '"no match" after typing');
  await waitText(explain, (t) => t.includes('FAIL') && t.includes('source: "aws.ecr" does not satisfy "aws.inspector2"'), 'the FAIL line');
  // ...and back.
  await typeInto(page, pattern, '{"source": ["aws.ecr"]}');
  await waitText(verdict, 'match', '"match" after typing');

  // An invalid pattern: AWS's message, and the node its JSON pointer names is marked.
  const bad = '{"detail": {"scan-status": []}}';
  await typeInto(page, pattern, bad);
  await waitText(verdict, 'error', '"error" for an empty array');
  await waitText(page.getByTestId('error-message'), 'Event pattern is not valid. Reason: Empty arrays are not allowed', 'the AWS message');
  const mark = page.getByTestId('error-highlight');
  await waitText(mark, '[]', 'the highlighted node');
  const before = await mark.evaluate((m) => m.previousSibling && m.previousSibling.textContent);
  check(before === '{"detail": {"scan-status": ', `the mark sits at the pointed node, after ${JSON.stringify(before)}`);
  const where = await page.getByTestId('error').textContent();
  check(where.includes('/detail/scan-status'), `the pointer is shown: ${where}`);

  // A syntax error marks the character where it was noticed; the Test button re-runs it.
  await typeInto(page, pattern, '{"source": ["aws.ecr"] oops}');
  await waitText(mark, 'o', 'the highlighted character');
  await page.getByTestId('run').click();
  await waitText(verdict, 'error', 'the verdict after Test');
  check(await page.evaluate(() => window.__sameDocument === true), 'the verdict changed without a page load');

  // Fixing the pattern removes the mark.
  await typeInto(page, pattern, '{"detail": {"scan-status": ["COMPLETE"]}}');
  await waitText(verdict, 'match', '"match" once fixed');
  check((await mark.count()) === 0, 'no highlight without an error');

  // Which rules match: the Slack message drawn as blocks, the email's HTML in a sandboxed frame,
  // the webhook's JSON.
  const card = page.locator('[data-testid=rule-match][data-rule=critical-to-all]');
  await card.waitFor();
  const slack = card.getByTestId('slack-message');
  await waitText(slack, /2 CRITICAL, 7 HIGH.*payments\/api:v2\.14\.0/, 'the Slack header');
  check(await slack.locator('.blk-header').count() === 1, 'a header block');
  check(await slack.locator('.blk-fields').count() === 1, 'a fields section');
  check(await slack.locator('a.btn-slack').count() === 1, 'the ECR console button');
  const frame = card.getByTestId('email-html');
  check((await frame.getAttribute('sandbox')) === '', 'the email frame is sandboxed without permissions');
  await waitText(page.frameLocator('[data-testid=email-html]').locator('body'), /2 CRITICAL, 7 HIGH/, 'the email HTML');
  const hook = await card.getByTestId('webhook-body').textContent();
  check(JSON.parse(hook)['detail-type'] === 'ECR Image Scan', 'the webhook body is the event as JSON');

  // A hostile event stays text everywhere: no element, no script, no link is made from it.
  const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> *bold* <https://evil.example|click> &amp;';
  const hostile = {
    id: 'hostile-1', source: 'aws.ecr', 'detail-type': 'ECR Image Scan', account: '123456789012', region: 'evil.example/#',
    detail: { 'scan-status': 'COMPLETE', 'repository-name': evil, 'image-tags': [evil], 'image-digest': 'sha256:' + 'a'.repeat(64),
      'finding-severity-counts': { CRITICAL: 1 } },
  };
  await page.getByTestId('event').fill(JSON.stringify(hostile, null, 2));
  await waitText(page.getByTestId('routes-summary'), /^1 of 1 rule\(s\) match/, 'the hostile event routed');
  await waitText(slack, (t) => t.includes('<img src=x onerror="window.__pwned=1">'), 'the hostile text shown as text');
  await page.waitForTimeout(300);
  check(await page.evaluate(() => window.__pwned === undefined), 'no script from the event ran');
  check(await page.locator('#routes img, #routes script').count() === 0, 'no element made from the event');
  const hosts = await page.locator('#routes a').evaluateAll((as) => as.map((a) => new URL(a.href).hostname));
  check(!hosts.some((h) => h.includes('evil.example')), `no link steered by the event: ${hosts}`);
  await waitText(page.frameLocator('[data-testid=email-html]').locator('body'), (t) => t.includes('<img src=x'), 'the email shows the text');

  // No secret of the configuration reaches the page or the API answers it uses.
  const html = await page.content();
  const api = await page.evaluate(async (e) => (await fetch('/api/v1/route', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: e }) })).text(), JSON.stringify(hostile));
  const rules = await page.evaluate(async () => (await fetch('/api/v1/rules')).text());
  for (const s of SECRETS) check(!html.includes(s) && !api.includes(s) && !rules.includes(s), `${s} is not shown`);
  check(await page.evaluate(() => window.__sameDocument === true), 'still the same page');
});
