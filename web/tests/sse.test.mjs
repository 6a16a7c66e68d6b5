// The page's SSE decoder, without a browser: every way a stream can be cut into chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, eventText, errorOf } from '../sse.js';

function decodeInPieces(text, cut) {
  const parser = new SseParser();
  const events = [];
  for (let i = 0; i < text.length; i += cut) events.push(...parser.push(text.slice(i, i + cut)));
  events.push(...parser.end());
  return events;
}

const STREAM =
  '\ufeffdata: "Hel"\r\n\r\n: a comment\n\ndata: "lo"\r\r' +
  'event: error\ndata: {"error":{"code":"agent_error",\ndata: "message":"m"}}\n\n' +
  'data:no space\r\n\r\ndata: "unfinished"';

test('the same events whatever the chunk size (CRLF, CR and lines split across chunks)', () => {
  const whole = decodeInPieces(STREAM, STREAM.length);
  assert.deepEqual(whole, [
    { event: 'message', data: '"Hel"' },
    { event: 'message', data: '"lo"' },
    { event: 'error', data: '{"error":{"code":"agent_error",\n"message":"m"}}' },
    { event: 'message', data: 'no space' },
  ]);
  for (let cut = 1; cut < STREAM.length; cut++) {
    assert.deepEqual(decodeInPieces(STREAM, cut), whole, `chunks of ${cut}`);
  }
});

test('a CR at the end of a chunk followed by LF is one line end', () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push('data: a\r'), []);
  assert.deepEqual(parser.push('\n\r'), []);
  assert.deepEqual(parser.push('\ndata: b\n\n'), [
    { event: 'message', data: 'a' },
    { event: 'message', data: 'b' },
  ]);
});

test('JSON-string data is decoded, anything else is shown as sent', () => {
  assert.equal(eventText('"Hel\\nlo"'), 'Hel\nlo');
  assert.equal(eventText(' "x" '), 'x');
  assert.equal(eventText('{"a":1}'), '{"a":1}');
  assert.equal(eventText('"broken'), '"broken');
  assert.equal(eventText('"a" "b"'), '"a" "b"');
  assert.equal(eventText('plain'), 'plain');
});

test('error documents', () => {
  assert.deepEqual(errorOf('{"error":{"code":"throttled","message":"slow down"}}'), {
    code: 'throttled',
    message: 'slow down',
  });
  assert.equal(errorOf('{"message":"Unauthorized"}'), null);
  assert.equal(errorOf('nope'), null);
});
