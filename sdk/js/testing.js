// In-process fakes of the WIT interfaces, to unit-test an agent's logic
// under node (no host, no component):
//
//   import { fakeHost } from '.../sdk/js/testing.js';
//   const host = fakeHost({ llm: (messages, options) => 'a summary' });
//   const answer = agent.handle({ sessionId: 's', text: 'hi', history: [] });
//   host.memory.data  // Map of key -> Uint8Array
//   host.logs         // [[level, message], ...]
//
// `llm` answers `(messages, options) => string | reply`; without one every
// chat fails with `not-configured`, as on a host with no model.
import { use } from './agentkernel.js';

const same = (a, b) =>
  a === undefined || b === undefined ? a === b : a.length === b.length && a.every((x, i) => x === b[i]);

// The host's errors arrive as a thrown value carrying the WIT variant.
const fail = (tag, val) => {
  throw { payload: { tag, val } };
};

export class FakeMemory {
  constructor() {
    this.data = new Map();
    this.histories = new Map();
  }
  get(key) { return this.data.get(key); }
  set(key, value) { this.data.set(key, Uint8Array.from(value)); }
  delete(key) { return this.data.delete(key); }
  listKeys(prefix, limit) { return [...this.data.keys()].filter((k) => k.startsWith(prefix)).sort().slice(0, limit); }
  compareAndSwap(key, expected, next) {
    if (!same(this.data.get(key), expected)) return false;
    if (next === undefined) this.data.delete(key);
    else this.data.set(key, Uint8Array.from(next));
    return true;
  }
  increment(key, delta) {
    const text = new TextDecoder().decode(this.data.get(key) ?? new TextEncoder().encode('0'));
    if (!/^-?\d+$/.test(text)) fail('invalid-value', `${key} is not a decimal integer`);
    const value = BigInt(text) + delta;
    this.data.set(key, new TextEncoder().encode(value.toString()));
    return value;
  }
  batch(steps) {
    const staged = new Map(this.data);
    for (const { tag, val } of steps) {
      if (tag === 'set') staged.set(val[0], Uint8Array.from(val[1]));
      else if (tag === 'delete') staged.delete(val);
      else if (!same(staged.get(val[0]), val[1])) fail('conflict', `expect on ${val[0]} did not hold`);
    }
    this.data = staged;
  }
  appendHistory(sessionId, turn) {
    if (!this.histories.has(sessionId)) this.histories.set(sessionId, []);
    this.histories.get(sessionId).push({ ...turn });
  }
  history(sessionId, limit) { return limit ? (this.histories.get(sessionId) ?? []).slice(-limit) : []; }
}

export class FakeLlm {
  constructor(respond) {
    this.respond = respond;
    this.calls = [];
  }
  chat(messages, options) {
    this.calls.push({ messages, options });
    if (!this.respond) fail('not-configured');
    const out = this.respond(messages, options);
    return typeof out === 'string'
      ? { content: out, toolCalls: [], finishReason: 'stop', model: 'fake', usage: { promptTokens: 0, completionTokens: 0 } }
      : out;
  }
}

/** Installs fakes of `log`, `memory` and `llm`; returns them to inspect. */
export function fakeHost({ llm } = {}) {
  const host = { memory: new FakeMemory(), llm: new FakeLlm(llm), logs: [] };
  use({ memory: host.memory, llm: host.llm, log: { write: (level, message) => host.logs.push([level, message]) } });
  return host;
}
