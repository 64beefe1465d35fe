// The console in a real browser: a silence added with the form (a bad matcher refused first), then
// (PHASE=check, after the test sent a matching event) the delivery shown as suppressed by it, and the
// silence expired.
import { run, check, waitText, BASE } from './lib.mjs';

const phase = process.env.PHASE;

await run('console-silence-' + phase, async (page) => {
  if (phase === 'add') {
    await page.goto(BASE + '/ui/console#silences');
    const form = page.getByTestId('silence-form');
    await form.getByTestId('silence-matchers').fill('nonsense');
    await form.getByTestId('silence-comment').fill('payments images are being rebuilt (INC-4711)');
    await form.getByTestId('silence-add').click();
    await waitText(page.getByTestId('silence-error'), /matcher "nonsense": expected PATH=VALUE/, 'the refusal of a bad matcher');
    check(await page.getByTestId('silence-row').count() === 0, 'nothing stored');
    await form.getByTestId('silence-matchers').fill('detail.repository-name=payments/*');
    await form.getByTestId('silence-expires').fill('2h');
    await form.getByTestId('silence-author').fill('alice');
    await form.getByTestId('silence-add').click();
    await waitText(page.getByTestId('toast'), /^Silence [0-9a-f]{12} in force until /, 'the new silence');
    const row = page.getByTestId('silence-row').first();
    await waitText(row, (t) => t.includes('detail.repository-name=payments/*') && t.includes('INC-4711') && t.includes('alice'), 'the silence listed');
    console.log('silence: ' + (await row.getAttribute('data-id')));
  } else {
    await page.goto(BASE + '/ui/console#events');
    const row = page.locator('[data-testid=event-row]', { hasText: 'payments/api' }).first();
    await waitText(row.locator('[data-testid=delivery-status]').first(), 'hook · suppressed: silenced', 'the silenced delivery');
    await row.click();
    await waitText(page.getByTestId('event-detail').first().getByTestId('delivery-why'), new RegExp(`silence ${process.env.SILENCE}`), 'which silence');
    await page.getByTestId('tab-suppressed').click();
    await waitText(page.getByTestId('suppressed-row').first(), (t) => t.includes('silenced') && t.includes(process.env.SILENCE), 'the suppressed list');
    await page.getByTestId('tab-silences').click();
    await page.locator(`[data-testid=expire][data-id="${process.env.SILENCE}"]`).click();
    await waitText(page.getByTestId('toast'), `Silence ${process.env.SILENCE} expired`, 'the expiry');
    await page.locator('[data-testid=silences] .empty').waitFor();
  }
});
