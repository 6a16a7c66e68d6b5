// Server-sent events, decoded as they arrive: the WHATWG parsing rules (CR, LF or CRLF line
// ends, a line or a CRLF split across chunks, multi-line `data`, `event`, comments, a BOM),
// fed with text (the caller decodes bytes with one streaming TextDecoder, so a character
// split across chunks is whole here). An event still open when the stream ends is
// discarded, as the standard says.

export class SseParser {
  constructor() {
    this.buffer = '';
    this.started = false;
    this.event = '';
    this.data = [];
  }

  // Feeds `text`; returns the events it completed: [{event, data}].
  push(text) {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.buffer += text;
    const events = [];
    const buf = this.buffer;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i];
      if (c !== '\n' && c !== '\r') continue;
      // A CR at the end of what has arrived may be the first half of a CRLF.
      if (c === '\r' && i + 1 === buf.length) break;
      const line = buf.slice(start, i);
      if (c === '\r' && buf[i + 1] === '\n') i++;
      start = i + 1;
      this.line(line, events);
    }
    this.buffer = buf.slice(start);
    return events;
  }

  // The stream ended: a final CR ends its line; an event without its blank line is dropped.
  end() {
    const events = [];
    if (this.buffer === '\r') this.line('', events);
    this.buffer = '';
    this.event = '';
    this.data = [];
    return events;
  }

  line(line, events) {
    if (line === '') {
      if (this.data.length > 0) {
        events.push({ event: this.event || 'message', data: this.data.join('\n') });
      }
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    // `id` and `retry` do not matter to a single answer.
  }
}

// The text a person reads from one event's data: a JSON string is decoded ("Hel\nlo" is
// two lines), anything else is shown as it is (agentcore-core's `sse::event_text`).
export function eventText(data) {
  const trimmed = data.trim();
  if (trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')) {
    try {
      const text = JSON.parse(trimmed);
      if (typeof text === 'string') return text;
    } catch {
      // not JSON after all: shown as sent
    }
  }
  return data;
}

// The JSON error document of an `event: error` or an HTTP error, if `text` is one:
// {code, message}.
export function errorOf(text) {
  try {
    const doc = JSON.parse(text);
    if (doc && typeof doc === 'object' && doc.error && typeof doc.error === 'object') {
      return { code: String(doc.error.code ?? 'error'), message: String(doc.error.message ?? '') };
    }
  } catch {
    // not JSON
  }
  return null;
}
