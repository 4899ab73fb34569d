// The answer page in the system Chromium (issue 19, item 4). Run by tests/answers_browser.rs,
// which serves the page on 127.0.0.1 against the emulator and passes the links as JSON in argv[2]:
// {keep, undo, approve, forged, expired, screenshot}. Prints one JSON line of what it saw; any
// failed expectation exits non-zero.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const links = JSON.parse(process.argv[2]);
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 1000 } });
  const blocked = [];
  // No request may leave 127.0.0.1: the page has no external asset.
  page.on('request', (r) => {
    if (!new URL(r.url()).hostname.startsWith('127.0.0.1')) blocked.push(r.url());
  });
  const csp = [];
  page.on('console', (m) => csp.push(m.text()));

  // Keep: the page, its form, the screenshot, then the answer.
  let res = await page.goto(links.keep);
  assert.equal(res.status(), 200);
  assert.equal(res.headers()['x-frame-options'], 'DENY');
  await page.getByRole('heading', { level: 1 }).waitFor();
  assert.match(await page.locator('h1').innerText(), /role \/answer-keep/);
  await page.screenshot({ path: links.screenshot, fullPage: true });
  await page.getByLabel('Why is it still needed?').fill('needed for the quarterly close');
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Keep' }).click()]);
  seen.keep = await page.locator('main').innerText();
  assert.match(seen.keep, /^Done/);

  // The same link again: the identity has moved on, so the page refuses and offers no button.
  res = await page.goto(links.keep);
  assert.equal(res.status(), 409);
  seen.keepAgain = await page.locator('main').innerText();
  assert.match(seen.keepAgain, /Nothing was changed/);
  assert.equal(await page.getByRole('button').count(), 0);

  for (const [name, button] of [['undo', 'Undo'], ['approve', 'Approve deletion']]) {
    res = await page.goto(links[name]);
    assert.equal(res.status(), 200, name);
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: button }).click()]);
    seen[name] = await page.locator('main').innerText();
    assert.match(seen[name], /^Done/, name);
  }

  for (const [name, status] of [['forged', 403], ['expired', 410]]) {
    res = await page.goto(links[name]);
    assert.equal(res.status(), status, name);
    seen[name] = await page.locator('main').innerText();
    assert.match(seen[name], /Nothing was changed/, name);
    assert.equal(await page.getByRole('button').count(), 0, `${name}: no button`);
  }
  assert.deepEqual(blocked, []);
  seen.console = csp;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
