// The console in a real browser: a dead letter (made by a receiver answering 400) is shown with its
// reason, redriven from the dead-letter tab, and then shows as delivered.
import { run, check, waitText, shot, BASE } from './lib.mjs';

await run('console-redrive', async (page) => {
  await page.goto(BASE + '/ui/console#events');
  const row = page.locator(`[data-testid=event-row][data-id="${process.env.EVENT}"]`);
  await row.waitFor();
  const hookPill = row.locator('[data-testid=delivery-status][data-target=hook]');
  await waitText(hookPill, 'hook · dead letter', 'the dead-lettered delivery');
  await waitText(row.locator('[data-testid=delivery-status][data-target=pager]'), 'pager · retrying', 'the retrying delivery');
  await row.click();
  const detail = page.getByTestId('event-detail').first();
  await waitText(detail, (t) => t.includes('HTTP 400') && t.includes('last error: '), 'the reasons in the details');
  await shot(page, 'ui-console.png');

  await page.getByTestId('tab-deadletters').click();
  const dl = page.getByTestId('deadletter-row').first();
  await waitText(dl.getByTestId('deadletter-reason'), /HTTP 400/, 'the dead letter and its reason');
  check(await page.getByTestId('deadletter-row').count() === 1, 'one dead letter');
  await dl.getByTestId('redrive').click();
  await waitText(page.getByTestId('toast'), 'Redriven: 1 delivery; due now', 'the redrive answer');
  await page.locator('[data-testid=deadletters] .empty').waitFor();

  await page.getByTestId('tab-events').click();
  const again = page.locator(`[data-testid=event-row][data-id="${process.env.EVENT}"]`);
  await waitText(again.locator('[data-testid=delivery-status][data-target=hook]'), 'hook · delivered', 'the redriven delivery delivered', 20000);
});
