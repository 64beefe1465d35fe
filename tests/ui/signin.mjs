// Sign-in with a token in a real browser: the pages ask for it, a wrong token is refused, the session
// cookie is HttpOnly and SameSite=Strict, changes need the CSRF token, and signing out ends it.
import { run, check, waitText, BASE } from './lib.mjs';

const TOKEN = process.env.TOKEN;

await run('signin', async (page, context) => {
  await page.goto(BASE + '/ui/console');
  check(new URL(page.url()).pathname === '/ui/login', `sent to sign in, at ${page.url()}`);
  await page.getByTestId('token').fill('not-the-token');
  await page.getByTestId('sign-in').click();
  await waitText(page.getByTestId('login-error'), 'That token is not accepted.', 'the refusal');
  check((await context.cookies()).length === 0, 'no cookie for a wrong token');

  await page.getByTestId('token').fill(TOKEN);
  await page.getByTestId('sign-in').click();
  await page.waitForURL('**/ui/console');
  await page.getByTestId('stat-queue').waitFor();
  const cookies = await context.cookies();
  const c = cookies.find((x) => x.name === 'scanbridge_session');
  check(c && c.httpOnly && c.sameSite === 'Strict' && c.path === '/', `the cookie: ${JSON.stringify(cookies)}`);
  check(!c.value.includes(TOKEN), 'the cookie is not the token');
  check(!(await page.evaluate(() => document.cookie)).includes('scanbridge_session'), 'scripts cannot read the cookie');
  check(!(await page.content()).includes(TOKEN), 'the page does not show the token');

  // A change without the CSRF token is refused; with it, accepted.
  const post = (headers) => page.evaluate(async (h) => {
    const r = await fetch('/api/v1/silences', { method: 'POST', headers: { 'content-type': 'application/json', ...h },
      body: JSON.stringify({ matchers: ['detail.repository-name=csrf/*'], expires: '1h', comment: 'csrf check' }) });
    return { status: r.status, body: await r.text() };
  }, headers);
  const refused = await post({});
  check(refused.status === 403 && refused.body.includes('CSRF'), `no CSRF token: ${JSON.stringify(refused)}`);
  const wrong = await post({ 'X-CSRF-Token': 'forged' });
  check(wrong.status === 403, `a forged CSRF token: ${JSON.stringify(wrong)}`);
  const csrf = await page.evaluate(async () => (await (await fetch('/ui/session')).json()).csrf);
  check(typeof csrf === 'string' && csrf.length >= 32, 'a CSRF token for the session');
  const ok = await post({ 'X-CSRF-Token': csrf });
  check(ok.status === 201, `with the CSRF token: ${JSON.stringify(ok)}`);
  const redrive = await page.evaluate(async () => (await fetch('/api/v1/deadletters/redrive', { method: 'POST' })).status);
  check(redrive === 403, `redrive without the CSRF token: ${redrive}`);

  // The page's own changes carry the token.
  await page.goto(BASE + '/ui/console#silences');
  await page.getByTestId('silence-matchers').fill('detail.repository-name=signed-in/*');
  await page.getByTestId('silence-comment').fill('added through the signed-in page');
  await page.getByTestId('silence-add').click();
  await waitText(page.getByTestId('silence-row').first(), /signed-in/, 'the silence added by the page');

  // Signing out ends the session.
  await page.getByTestId('sign-out').click();
  await page.waitForURL('**/ui/login');
  const after = await page.evaluate(async () => (await fetch('/api/v1/events')).status);
  check(after === 401, `the API after sign-out: ${after}`);
  await page.goto(BASE + '/ui/sandbox');
  check(new URL(page.url()).pathname === '/ui/login', 'pages ask again after sign-out');
});
