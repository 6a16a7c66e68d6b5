// The browser client of the AgentCore boundary: picks a front door, signs in with a token
// from the local issuer (or a pasted one), sends a prompt and shows the answer as it
// streams (fetch + ReadableStream + TextDecoder + an SSE decoder), with the session id,
// time to first byte, bytes and duration. No framework, no build step, no inline script:
// the page's Content-Security-Policy allows only its own files.

import { SseParser, eventText, errorOf } from './sse.js';

const $ = (id) => document.getElementById(id);

const OPTION_NAMES = {
  1: 'option 1',
  2: 'option 2',
  3: 'option 3',
  edge: 'option 2 through the edge',
};

const state = {
  urls: { 1: '', 2: '', 3: '', edge: '' },
  signInAvailable: true,
  token: null,
  user: null,
  sessionId: null,
  controller: null,
};

function option() {
  const checked = document.querySelector('input[name="option"]:checked');
  return checked ? checked.value : '2';
}

function setState(name) {
  document.body.dataset.state = name;
  $('stat-state').textContent = name;
  const busy = name === 'sending' || name === 'streaming';
  $('send').disabled = busy;
  $('stop').disabled = !busy;
}

function showMessage(text, kind = 'error') {
  const el = $('message');
  el.textContent = text;
  el.className = kind === 'error' ? 'message' : 'message info';
  el.dataset.kind = kind;
  el.hidden = false;
}

function clearMessage() {
  const el = $('message');
  el.hidden = true;
  el.textContent = '';
  delete el.dataset.kind;
}

// ---- sign-in ---------------------------------------------------------------------------

function tokenClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return null;
  }
}

function setToken(token, user) {
  state.token = token;
  state.user = user;
  const claims = token ? tokenClaims(token) : null;
  const who = user || claims?.email || claims?.sub || 'a pasted token';
  if (token) {
    const until = claims?.exp ? `, valid until ${new Date(claims.exp * 1000).toLocaleTimeString()}` : '';
    $('signin-state').textContent = `Signed in as ${who}${until}.`;
    $('signin-prompt').hidden = true;
    $('signout-button').hidden = false;
  } else {
    $('signin-state').textContent = state.signInAvailable
      ? 'Not signed in.'
      : 'Not signed in (this stack runs without end-user sign-in).';
    $('signout-button').hidden = true;
  }
}

// After a 401: the token is missing, expired or refused. Ask the person to sign in again.
function askToSignIn(reason) {
  setToken(null, null);
  const prompt = $('signin-prompt');
  prompt.textContent = `${reason} Sign in to continue.`;
  prompt.hidden = false;
  $('user').focus();
}

async function signIn(event) {
  event.preventDefault();
  const user = $('user').value.trim();
  if (!user) {
    showMessage('Type a user name to sign in as.');
    $('user').focus();
    return;
  }
  try {
    const resp = await fetch(`/auth/token?user=${encodeURIComponent(user)}`, { cache: 'no-store' });
    const text = await resp.text();
    let doc = null;
    try {
      doc = JSON.parse(text);
    } catch {
      // shown below
    }
    if (!resp.ok || !doc?.id_token) {
      showMessage(`Sign-in failed (${resp.status}): ${doc?.message || text || resp.statusText}`);
      return;
    }
    setToken(doc.id_token, user);
    clearMessage();
    $('prompt').focus();
  } catch (e) {
    showMessage(`Sign-in failed: the local stack did not answer (${e.message}).`);
  }
}

function useToken(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!token) {
    showMessage('Paste a token first.');
    $('token').focus();
    return;
  }
  setToken(token, null);
  clearMessage();
  $('prompt').focus();
}

// ---- requests --------------------------------------------------------------------------

async function sha256Hex(text) {
  if (!globalThis.crypto?.subtle) {
    throw new Error('this page needs a secure context (https or 127.0.0.1) to hash the body');
  }
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

// Headers for a request to `opt`: the token in Authorization, or, through the edge (whose
// origin access control signs Authorization itself), in x-auth-token.
function authHeaders(opt) {
  const headers = {};
  if (state.token) {
    if (opt === 'edge') headers['x-auth-token'] = state.token;
    else headers.authorization = `Bearer ${state.token}`;
  }
  return headers;
}

function extraFields() {
  const text = $('extra').value.trim();
  if (!text) return {};
  const doc = JSON.parse(text);
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new Error('the extra request fields must be a JSON object');
  }
  return doc;
}

// Why a 401 asks for a new sign-in, by the function's error code.
const SIGN_IN_REASONS = {
  missing_token: 'You are not signed in.',
  missing_identity: 'You are not signed in.',
  token_expired: 'Your sign-in has expired.',
  token_not_yet_valid: 'Your token is not valid yet (check the clock).',
  invalid_token: 'Your token was not accepted.',
};

// A failed HTTP answer as a sentence, and whether it asks for a new sign-in.
async function describeHttpError(resp) {
  const text = await resp.text().catch(() => '');
  const err = errorOf(text);
  let doc = null;
  try {
    doc = JSON.parse(text);
  } catch {
    // not JSON
  }
  const retry = resp.headers.get('retry-after');
  const retryNote = retry ? ` Retry in ${retry} s.` : '';
  if (err) {
    return {
      text: `Error ${resp.status} ${err.code}: ${err.message}${retryNote}`,
      signIn: resp.status === 401,
      reason: SIGN_IN_REASONS[err.code] || 'Your sign-in was not accepted.',
    };
  }
  // API Gateway's own errors are {"message": ...}; an edge's or a Function URL's {"Message": ...}.
  const message = doc?.message || doc?.Message || text.slice(0, 300) || resp.statusText;
  if (resp.status === 401) {
    return {
      text: `Error 401: ${message}. The gateway refused the request without a valid sign-in.`,
      signIn: true,
      reason: 'The gateway did not accept your sign-in.',
    };
  }
  if (resp.status === 403 && resp.headers.get('x-cache')?.includes('cloudfront')) {
    return { text: `Error 403 from the edge: ${message}`, signIn: false };
  }
  return { text: `Error ${resp.status}: ${message}${retryNote}`, signIn: false };
}

function addTurn(kind, label, text) {
  const li = document.createElement('li');
  li.className = `turn ${kind}`;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = label;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  li.append(who, body);
  $('transcript').append(li);
  li.scrollIntoView({ block: 'nearest' });
  return body;
}

function setSession(id) {
  if (!id) return;
  state.sessionId = id;
  $('stat-session').textContent = id;
}

function ms(t) {
  return `${Math.round(t)} ms`;
}

async function send(event) {
  event?.preventDefault();
  if (state.controller) return;
  const prompt = $('prompt').value.trim();
  if (!prompt) {
    showMessage('Type a prompt first.');
    $('prompt').focus();
    return;
  }
  const opt = option();
  const url = $('endpoint').value.trim();
  let body;
  try {
    body = { ...extraFields(), prompt };
  } catch (e) {
    showMessage(`The extra request fields are not usable: ${e.message}.`);
    $('extra').focus();
    return;
  }
  if (state.sessionId) body.session_id = state.sessionId;
  const bodyText = JSON.stringify(body);
  const headers = { 'content-type': 'application/json', ...authHeaders(opt) };
  clearMessage();
  try {
    if (opt === 'edge') headers['x-amz-content-sha256'] = await sha256Hex(bodyText);
  } catch (e) {
    showMessage(`Cannot send through the edge: ${e.message}.`);
    return;
  }

  addTurn('user', 'You', prompt);
  $('prompt').value = '';
  const answer = addTurn('agent', `Agent · ${OPTION_NAMES[opt]}`, '');
  const turn = answer.parentElement;
  turn.classList.add('streaming');
  const controller = new AbortController();
  state.controller = controller;
  setState('sending');
  $('stat-ttfb').textContent = '…';
  $('stat-bytes').textContent = '0';
  $('stat-duration').textContent = '…';
  const started = performance.now();
  let bytes = 0;
  let firstByte = null;
  const finish = (name) => {
    $('stat-duration').textContent = ms(performance.now() - started);
    turn.classList.remove('streaming');
    turn.dataset.done = name;
    state.controller = null;
    setState(name);
  };

  let resp;
  try {
    resp = await fetch(url, {
      method: 'POST',
      headers,
      body: bodyText,
      signal: controller.signal,
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') {
      showMessage('Stopped before the agent answered.', 'info');
      finish('stopped');
    } else {
      showMessage(
        `Could not reach ${url}: the network failed or the server refused this page (CORS). Is the local stack running, and does it allow this origin?`,
      );
      finish('failed');
    }
    return;
  }
  setSession(resp.headers.get('x-session-id'));
  if (!resp.ok) {
    const err = await describeHttpError(resp);
    showMessage(err.text);
    answer.textContent = '(no answer)';
    finish('failed');
    if (err.signIn) askToSignIn(err.reason || 'Your sign-in is missing or has expired.');
    return;
  }

  setState('streaming');
  const contentType = (resp.headers.get('content-type') || '').toLowerCase();
  const isSse = contentType.startsWith('text/event-stream');
  const isJsonDocument = contentType.startsWith('application/json') && opt === '1';
  const decoder = new TextDecoder();
  const parser = new SseParser();
  let whole = '';
  let inBandError = null;
  const handleEvents = (events) => {
    for (const ev of events) {
      if (ev.event === 'error') {
        const err = errorOf(ev.data);
        inBandError = err || { code: 'error', message: ev.data };
      } else if (ev.event === 'message') {
        answer.appendChild(document.createTextNode(eventText(ev.data)));
      }
    }
  };
  const handleText = (text) => {
    if (isJsonDocument) whole += text;
    else if (isSse) handleEvents(parser.push(text));
    else if (text) answer.appendChild(document.createTextNode(text));
  };
  try {
    const reader = resp.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length === 0) continue;
      if (firstByte === null) {
        firstByte = performance.now() - started;
        $('stat-ttfb').textContent = ms(firstByte);
      }
      bytes += value.length;
      $('stat-bytes').textContent = String(bytes);
      handleText(decoder.decode(value, { stream: true }));
    }
    handleText(decoder.decode());
    if (isSse) handleEvents(parser.end());
  } catch (e) {
    if (e.name === 'AbortError') {
      showMessage('Stopped: the answer was cut off at your request.', 'info');
      finish('stopped');
    } else {
      showMessage(`The connection broke before the answer was complete (${e.message}). Send the prompt again.`);
      finish('failed');
    }
    return;
  }
  if (isJsonDocument) {
    // Option 1: {"session_id", "response", "content_type", "text"}.
    try {
      const doc = JSON.parse(whole);
      setSession(doc.session_id);
      const text =
        typeof doc.text === 'string'
          ? doc.text
          : typeof doc.response === 'string'
            ? doc.response
            : JSON.stringify(doc.response);
      answer.textContent = text;
    } catch {
      answer.textContent = whole;
    }
  }
  if (inBandError) {
    showMessage(
      `The answer stopped with an error (${inBandError.code}): ${inBandError.message}`,
    );
    finish('failed');
    return;
  }
  if (answer.textContent === '') answer.textContent = '(the agent answered nothing this turn)';
  finish('done');
}

function stop() {
  state.controller?.abort();
}

// Ends the session on the server (DELETE with X-Session-Id: 204, or 404 when it is already
// gone) and starts a new conversation.
async function newConversation() {
  stop();
  const id = state.sessionId;
  const opt = option();
  clearMessage();
  if (id) {
    try {
      const resp = await fetch($('endpoint').value.trim(), {
        method: 'DELETE',
        headers: { 'x-session-id': id, ...authHeaders(opt) },
        credentials: 'omit',
        cache: 'no-store',
      });
      if (resp.status !== 204 && resp.status !== 404) {
        const err = await describeHttpError(resp);
        showMessage(`The session could not be ended: ${err.text}`);
        if (err.signIn) askToSignIn(err.reason || 'Your sign-in is missing or has expired.');
        return;
      }
      showMessage(
        resp.status === 204
          ? `Session ${id} ended. The next prompt starts a new conversation.`
          : `Session ${id} had already ended. The next prompt starts a new conversation.`,
        'info',
      );
    } catch {
      showMessage('Could not reach the server to end the session; it ends by itself after 15 minutes idle.');
    }
  }
  state.sessionId = null;
  $('stat-session').textContent = 'none yet';
  $('transcript').replaceChildren();
  for (const id of ['stat-ttfb', 'stat-bytes', 'stat-duration']) $(id).textContent = '–';
  setState('idle');
  $('prompt').focus();
}

// ---- wiring ----------------------------------------------------------------------------

function selectOption() {
  $('endpoint').value = state.urls[option()] || '';
}

async function loadConfig() {
  try {
    const resp = await fetch('/web/config.json', { cache: 'no-store' });
    const config = await resp.json();
    Object.assign(state.urls, config.options || {});
    state.signInAvailable = config.sign_in !== false;
  } catch {
    showMessage('Could not load the local stack\'s URLs (/web/config.json): type an endpoint URL.');
  }
  const wanted = new URLSearchParams(location.search).get('option');
  if (wanted && $(`option-${wanted}`)) $(`option-${wanted}`).checked = true;
  selectOption();
  setToken(null, null);
  document.body.dataset.ready = 'true';
}

function init() {
  for (const radio of document.querySelectorAll('input[name="option"]')) {
    radio.addEventListener('change', selectOption);
  }
  $('endpoint').addEventListener('input', () => {
    state.urls[option()] = $('endpoint').value;
  });
  $('signin-form').addEventListener('submit', signIn);
  $('token-form').addEventListener('submit', useToken);
  $('signout-button').addEventListener('click', () => {
    setToken(null, null);
    $('user').focus();
  });
  $('prompt-form').addEventListener('submit', send);
  $('prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) send(e);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.controller) stop();
  });
  $('stop').addEventListener('click', stop);
  $('new-conversation').addEventListener('click', newConversation);
  setState('idle');
  loadConfig();
}

init();
