// The page in a real browser: Debian's Chromium, driven by playwright-core, against a local
// stack with end-user sign-in that crates/local-stack/tests/browser.rs started. It passes:
//
//   PAGE_URL         the page, http://127.0.0.1:<gateway port>/
//   WATCH_LOG        the functions' log (cargo lambda watch's output)
//   SCREENSHOT_DIR   where conversation.png (and conversation-phone.png) go
//   EXPIRED_TOKEN    a token from the local issuer that expired an hour ago
//   EXPECT_HELLO     the demo agent's answer to "Hello from the browser" in 12 tokens
//   EXPECT_STREAM    its answer to "Stream to the page" in 30 tokens
//   CHROMIUM         the browser (default /usr/bin/chromium)
//
// Run by hand against `make run`: PAGE_URL=http://127.0.0.1:3000/ node --test web/tests/
// (the tests that need the log or the expected texts skip what they cannot check).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const PAGE_URL = process.env.PAGE_URL || 'http://127.0.0.1:3000/';
const WATCH_LOG = process.env.WATCH_LOG || '';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || 'target/browser';
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

let browser;

before(async () => {
  // playwright gives each launch a fresh temporary profile (its --user-data-dir).
  browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
});

// A fresh page (its own context: no shared token or session), loaded and ready. Console
// errors and CSP violations are collected: a test ends by asserting there were none.
async function open({ viewport = DESKTOP, query = '' } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    const text = msg.text();
    // A failed HTTP answer is logged by Chromium as a failed resource; the page shows it.
    if (msg.type() === 'error' && !/Failed to load resource/.test(text)) problems.push(text);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  const response = await page.goto(PAGE_URL + query);
  assert.equal(response.status(), 200);
  await page.waitForSelector('body[data-ready="true"]');
  return {
    page,
    problems,
    response,
    close: async () => {
      assert.deepEqual(problems, [], 'console errors or CSP violations on the page');
      await context.close();
    },
  };
}

async function pickOption(page, option) {
  await page.check(`#option-${option}`);
}

async function signIn(page, user) {
  await page.fill('#user', user);
  await page.click('#signin-button');
  await page.waitForFunction(() =>
    document.getElementById('signin-state').textContent.startsWith('Signed in as'),
  );
}

async function setExtra(page, extra) {
  const open = await page.$eval('#advanced', (d) => d.open);
  if (!open) await page.click('#advanced summary');
  await page.fill('#extra', extra ? JSON.stringify(extra) : '');
}

async function send(page, prompt, extra) {
  await setExtra(page, extra);
  await page.fill('#prompt', prompt);
  await page.click('#send');
}

// Waits for the answer to end; on a timeout, says what the page showed.
async function finished(page, timeout = 30_000) {
  try {
    await page.waitForFunction(
      () => ['done', 'failed', 'stopped'].includes(document.body.dataset.state),
      null,
      { timeout },
    );
  } catch (e) {
    const shown = await page.evaluate(() => ({
      state: document.body.dataset.state,
      option: document.querySelector('input[name="option"]:checked')?.value,
      endpoint: document.getElementById('endpoint').value,
      message: document.getElementById('message').textContent,
      session: document.getElementById('stat-session').textContent,
      ttfb: document.getElementById('stat-ttfb').textContent,
      bytes: document.getElementById('stat-bytes').textContent,
      answer: document.querySelector('#transcript .turn.agent:last-child .text')?.textContent,
    }));
    throw new Error(`${e.message}\nthe page shows: ${JSON.stringify(shown)}`);
  }
  return page.evaluate(() => document.body.dataset.state);
}

const answer = (page) =>
  page.$eval('#transcript .turn.agent:last-child .text', (e) => e.textContent);
const text = (page, id) => page.$eval(`#${id}`, (e) => e.textContent);
const visible = (page, id) => page.$eval(`#${id}`, (e) => !e.hidden);

test('the page is served with a strict Content-Security-Policy and labelled controls', async () => {
  const { page, response, close } = await open();
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /connect-src 'self' http:\/\/127\.0\.0\.1:\d+/);
  // No inline script or style in the document.
  const inline = await page.evaluate(() => ({
    scripts: [...document.scripts].filter((s) => !s.src).length,
    styles: document.querySelectorAll('style, [style]').length,
    handlers: [...document.querySelectorAll('*')].filter((e) =>
      [...e.attributes].some((a) => a.name.startsWith('on')),
    ).length,
  }));
  assert.deepEqual(inline, { scripts: 0, styles: 0, handlers: 0 });
  // Every input has a label (label for=...).
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, textarea, select')]
      .filter((e) => e.labels.length === 0)
      .map((e) => e.id || e.name),
  );
  assert.deepEqual(unlabelled, []);
  // The defaults come from the stack.
  assert.match(await page.inputValue('#endpoint'), /\/lambda-url\/option2-lambda-url\/$/);
  await pickOption(page, '1');
  assert.match(await page.inputValue('#endpoint'), /\/option1\/invoke$/);
  await close();
});

test('each option answers: 1, 2, 3 and 2 through the edge, with session, first byte, bytes and duration', async () => {
  const { page, close } = await open();
  await signIn(page, 'alice');
  for (const option of ['1', '2', '3', 'edge']) {
    await pickOption(page, option);
    await send(page, 'Hello from the browser', { demo: { tokens: 12 } });
    assert.equal(await finished(page), 'done', `option ${option}: ${await text(page, 'message')}`);
    const got = await answer(page);
    if (process.env.EXPECT_HELLO) assert.equal(got, process.env.EXPECT_HELLO, `option ${option}`);
    else assert.ok(got.length > 0);
    assert.ok((await text(page, 'stat-session')).length >= 33, `option ${option}: session id`);
    assert.match(await text(page, 'stat-ttfb'), /^\d+ ms$/);
    assert.match(await text(page, 'stat-bytes'), /^[1-9]\d*$/);
    assert.match(await text(page, 'stat-duration'), /^\d+ ms$/);
    // A second prompt continues the same session.
    const session = await text(page, 'stat-session');
    await send(page, 'And again', { demo: { tokens: 3 } });
    assert.equal(await finished(page), 'done', `option ${option}: ${await text(page, 'message')}`);
    assert.equal(await text(page, 'stat-session'), session, `option ${option} keeps the session`);
    // New conversation: DELETE with X-Session-Id (204), then a new id.
    await page.click('#new-conversation');
    await page.waitForFunction(() => document.getElementById('message').dataset.kind === 'info');
    assert.match(await text(page, 'message'), new RegExp(`Session ${session} ended`));
    assert.equal(await text(page, 'stat-session'), 'none yet');
    await send(page, 'A new start', { demo: { tokens: 2 } });
    assert.equal(await finished(page), 'done');
    assert.notEqual(await text(page, 'stat-session'), session, `option ${option}: a new session`);
    await page.click('#new-conversation');
    await page.waitForFunction(() => document.body.dataset.state === 'idle');
  }
  await close();
});

test('the answer appears token by token while the agent is still sending', async () => {
  const { page, close } = await open();
  await signIn(page, 'streamer');
  await pickOption(page, '2');
  // 30 tokens 100 ms apart: the agent sends the last one about 2.9 s after the first.
  await send(page, 'Stream to the page', { demo: { tokens: 30, delay_ms: 100 } });
  const samples = [];
  const t0 = Date.now();
  for (;;) {
    const sample = await page.evaluate(() => ({
      state: document.body.dataset.state,
      length: document.querySelector('#transcript .turn.agent:last-child .text').textContent.length,
    }));
    samples.push({ t: Date.now() - t0, ...sample });
    if (!['sending', 'streaming'].includes(sample.state) || Date.now() - t0 > 30_000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(samples.at(-1).state, 'done');
  const final = await answer(page);
  if (process.env.EXPECT_STREAM) assert.equal(final, process.env.EXPECT_STREAM);
  const firstShown = samples.find((s) => s.length > 0);
  const lastTime = samples.at(-1).t;
  assert.ok(firstShown, 'text appeared');
  assert.ok(
    firstShown.length < final.length,
    `the first text on screen (${firstShown.length} chars) is not the whole answer (${final.length})`,
  );
  // The first tokens were on screen well before the last one was sent.
  assert.ok(
    lastTime - firstShown.t >= 1500,
    `first text at ${firstShown.t} ms, done at ${lastTime} ms: not streamed`,
  );
  const distinct = new Set(samples.filter((s) => s.state === 'streaming').map((s) => s.length));
  assert.ok(distinct.size >= 10, `the text grew in ${distinct.size} steps, not token by token`);
  await close();
});

test('Stop aborts the request and the function sees the client go away', async () => {
  const { page, close } = await open();
  await signIn(page, 'stopper');
  await pickOption(page, '2');
  await send(page, 'A long answer to stop', { demo: { tokens: 200, delay_ms: 100 } });
  await page.waitForFunction(
    () => document.querySelector('#transcript .turn.agent:last-child .text').textContent.length > 0,
  );
  const session = await text(page, 'stat-session');
  const stoppedAt = Date.now();
  await page.click('#stop');
  assert.equal(await finished(page, 5_000), 'stopped');
  assert.match(await text(page, 'message'), /Stopped/);
  assert.equal(await page.$eval('#stop', (b) => b.disabled), true);
  if (WATCH_LOG) {
    const wentAway = 'client went away before the end of the stream';
    let line;
    while (!line) {
      line = readFileSync(WATCH_LOG, 'utf8')
        .split('\n')
        .find((l) => l.includes(session) && (l.includes(wentAway) || l.includes('stream complete')));
      assert.ok(Date.now() - stoppedAt < 5_000, `5 s after Stop, no log line for session ${session}`);
      if (!line) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(line.includes(wentAway), line);
  }
  await close();
});

test('an error in the middle of the stream is shown as a message', async () => {
  const { page, close } = await open();
  await signIn(page, 'erin');
  for (const option of ['2', '3']) {
    await pickOption(page, option);
    await send(page, 'Fail midway', { demo: { tokens: 10, error_after: 3 } });
    assert.equal(await finished(page), 'failed');
    const message = await text(page, 'message');
    assert.match(message, /The answer stopped with an error \(agent_error\): \S/, message);
    assert.ok((await answer(page)).length > 0, 'the tokens before the error stay on screen');
  }
  await close();
});

test('an HTTP error is shown with its code and message', async () => {
  const { page, close } = await open();
  await signIn(page, 'tess');
  for (const option of ['1', '2', '3', 'edge']) {
    await pickOption(page, option);
    await send(page, 'Too many', { demo: { fault: 'ThrottlingException' } });
    assert.equal(await finished(page), 'failed');
    const message = await text(page, 'message');
    assert.match(message, /^Error 429 throttled: \S/, `option ${option}: ${message}`);
    assert.equal(await visible(page, 'signin-prompt'), false);
  }
  await close();
});

test('a network failure is shown as a message', async () => {
  const { page, close } = await open();
  await signIn(page, 'alice');
  await pickOption(page, '3');
  await page.route('**/option3/invoke', (route) => route.abort('connectionrefused'));
  await send(page, 'Anyone there?', { demo: { tokens: 3 } });
  assert.equal(await finished(page), 'failed');
  assert.match(await text(page, 'message'), /^Could not reach http:\/\/127\.0\.0\.1:\d+\/option3\/invoke: /);
  await page.unroute('**/option3/invoke');
  await send(page, 'Back online', { demo: { tokens: 3 } });
  assert.equal(await finished(page), 'done');
  await close();
});

test('a missing or expired token leads to sign-in', async () => {
  const { page, close } = await open();
  // Not signed in: the function's 401 missing_token (option 2), the gateway's 401 (option 1).
  const GATEWAY = 'The gateway did not accept your sign-in. Sign in to continue.';
  for (const [option, pattern, prompt] of [
    ['2', /^Error 401 missing_token: /, 'You are not signed in. Sign in to continue.'],
    ['1', /^Error 401: Unauthorized/, GATEWAY],
    ['edge', /^Error 401 missing_token: /, 'You are not signed in. Sign in to continue.'],
  ]) {
    await pickOption(page, option);
    await send(page, 'Who am I?', null);
    assert.equal(await finished(page), 'failed');
    assert.match(await text(page, 'message'), pattern, `option ${option}`);
    assert.equal(await visible(page, 'signin-prompt'), true, `option ${option}: sign-in prompt`);
    assert.equal(await text(page, 'signin-prompt'), prompt);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'user');
  }
  // An expired token, pasted: token_expired from the function, Unauthorized from the gateway.
  if (process.env.EXPIRED_TOKEN) {
    for (const [option, pattern, prompt] of [
      ['2', /^Error 401 token_expired: /, 'Your sign-in has expired. Sign in to continue.'],
      ['3', /^Error 401: Unauthorized/, GATEWAY],
    ]) {
      await page.click('#paste summary');
      await page.fill('#token', process.env.EXPIRED_TOKEN);
      await page.click('#token-button');
      assert.equal(await visible(page, 'signin-prompt'), false);
      await pickOption(page, option);
      await send(page, 'Still me?', null);
      assert.equal(await finished(page), 'failed');
      assert.match(await text(page, 'message'), pattern, `option ${option}`);
      assert.equal(await visible(page, 'signin-prompt'), true);
      assert.equal(await text(page, 'signin-prompt'), prompt);
      assert.match(await text(page, 'signin-state'), /Not signed in/);
      await page.click('#paste summary');
    }
  }
  // Signing in again works.
  await signIn(page, 'alice');
  await pickOption(page, '2');
  await send(page, 'Back again', { demo: { tokens: 3 } });
  assert.equal(await finished(page), 'done');
  await close();
});

test('the edge refuses a POST without the body hash, as CloudFront with origin access control does', async () => {
  const { page, close } = await open();
  await signIn(page, 'alice');
  const results = await page.evaluate(async () => {
    const tokenText = document.getElementById('signin-state').textContent;
    const body = JSON.stringify({ prompt: 'no hash' });
    const out = [];
    for (const hash of [null, '0'.repeat(64)]) {
      const headers = { 'content-type': 'application/json' };
      if (hash) headers['x-amz-content-sha256'] = hash;
      const resp = await fetch('/edge/option2/', { method: 'POST', headers, body });
      out.push({ status: resp.status, body: await resp.text(), cache: resp.headers.get('x-cache') });
    }
    return { tokenText, out };
  });
  for (const r of results.out) {
    assert.equal(r.status, 403);
    assert.match(r.body, /"Message":"The request signature we calculated does not match/);
    assert.match(r.cache, /cloudfront/);
  }
  await close();
});

test('keyboard only, at phone width: sign in, send with Ctrl+Enter, a finished conversation (screenshots)', async () => {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const { page, close } = await open();
  await page.focus('#user');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() =>
    document.getElementById('signin-state').textContent.startsWith('Signed in as alice'),
  );
  assert.equal(await page.evaluate(() => document.activeElement.id), 'prompt');
  await pickOption(page, '3');
  await page.fill('#prompt', 'What is AgentCore Runtime?');
  await setExtra(page, { demo: { tokens: 24, delay_ms: 20 } });
  await page.focus('#prompt');
  await page.keyboard.press('Control+Enter');
  assert.equal(await finished(page), 'done');
  await page.fill('#prompt', 'And how does the page stream it?');
  await page.focus('#prompt');
  await page.keyboard.press('Control+Enter');
  assert.equal(await finished(page), 'done');
  await page.screenshot({ path: join(SCREENSHOT_DIR, 'conversation.png'), fullPage: true });

  await page.setViewportSize(PHONE);
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone`);
  await page.screenshot({ path: join(SCREENSHOT_DIR, 'conversation-phone.png'), fullPage: true });
  await close();
});
