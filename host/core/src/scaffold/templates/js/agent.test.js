// Unit tests of `{name}` under node, with the helper layer's fakes in place
// of the host: `node --test` in this directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHost } from './sdk/testing.js';
import { exportAgent, InvalidRequest } from './sdk/agentkernel.js';
import { agent, answer, counterKey } from './agent.js';

const req = (text, sessionId = 's1') => ({ sessionId, text, history: [], context: undefined });

test('answers with the text and the count', () => {
  assert.equal(answer('  hi ', 3), '{name} heard: hi (message 3 of this session)');
  assert.notEqual(counterKey('a'), counterKey('b'));
});

test('counts messages per session', () => {
  const host = fakeHost();
  assert.equal(agent.handle(req('hello')).text, '{name} heard: hello (message 1 of this session)');
  const r = agent.handle(req('again'));
  assert.equal(r.text, '{name} heard: again (message 2 of this session)');
  assert.deepEqual(JSON.parse(r.data), { count: 2 });
  assert.equal(agent.handle(req('hi', 's2')).text, '{name} heard: hi (message 1 of this session)');
  assert.equal(new TextDecoder().decode(host.memory.data.get(counterKey('s1'))), '2');
  assert.deepEqual(host.logs[0], ['info', 'message 1 of session s1']);
});

test('exports speak WIT: manifest, errors as variants', () => {
  fakeHost();
  const exported = exportAgent(agent);
  const m = exported.describe();
  assert.equal(m.name, '{name}');
  assert.ok(m.skills[0].keywords.includes('{name}'));
  assert.deepEqual(m.capabilities.map((c) => c.name), ['memory', 'log']);
  assert.throws(() => exported.handle(req('   ')), (e) => e.tag === 'invalid-request' && e.val === 'empty request');
  assert.throws(() => agent.handle(req('')), InvalidRequest);
});
