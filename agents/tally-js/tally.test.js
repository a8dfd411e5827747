// Unit tests of tally-js under node, with the SDK's fakes in place of the
// host: `node --test agents/tally-js/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHost } from '../../sdk/js/testing.js';
import { exportAgent, InvalidRequest } from '../../sdk/js/agentkernel.js';
import { tally, parse, counterName, totalsText, prefix } from './tally.js';

const req = (text, sessionId = 's1') => ({ sessionId, text, history: [], context: undefined });

test('parses commands', () => {
  assert.deepEqual(parse('count coffee'), { kind: 'add', name: 'coffee', step: 1 });
  assert.deepEqual(parse('Tally  Cups of Tea '), { kind: 'add', name: 'cups-of-tea', step: 1 });
  assert.deepEqual(parse('+1 push-ups'), { kind: 'add', name: 'push-ups', step: 1 });
  assert.deepEqual(parse('coffee++'), { kind: 'add', name: 'coffee', step: 1 });
  assert.deepEqual(parse('count 3 pages'), { kind: 'add', name: 'pages', step: 3 });
  assert.deepEqual(parse('count 0 pages'), { kind: 'unknown' });
  assert.deepEqual(parse('count !!!'), { kind: 'unknown' });
  assert.deepEqual(parse('tallies'), { kind: 'list' });
  assert.deepEqual(parse('show tallies?'), { kind: 'list' });
  assert.deepEqual(parse('reset coffee'), { kind: 'reset', name: 'coffee' });
  assert.deepEqual(parse('reset all'), { kind: 'reset-all' });
  assert.deepEqual(parse('Give me a tally report'), { kind: 'report' });
  assert.deepEqual(parse('summarize my counters'), { kind: 'report' });
  assert.deepEqual(parse('hello'), { kind: 'unknown' });
});

test('counter names are bounded and safe as key suffixes', () => {
  assert.equal(counterName('  Glasses of WATER!! '), 'glasses-of-water');
  assert.ok(counterName('x'.repeat(200)).length <= 48);
  assert.equal(counterName('../other/session'), 'other-session');
  assert.ok(!prefix('a').startsWith(prefix('b')));
});

test('totals list the largest first', () => {
  assert.equal(totalsText([]), 'No tallies yet.');
  assert.equal(totalsText([{ name: 'tea', value: 2 }, { name: 'coffee', value: 5 }]), 'coffee: 5, tea: 2');
});

test('counts, lists and resets per session', () => {
  const host = fakeHost();
  assert.equal(tally.handle(req('count coffee')).text, 'coffee: 1');
  assert.equal(tally.handle(req('coffee++')).text, 'coffee: 2');
  assert.equal(tally.handle(req('count 4 water')).text, 'water: 4');
  assert.equal(tally.handle(req('count coffee', 'other')).text, 'coffee: 1');
  const listed = tally.handle(req('tallies'));
  assert.equal(listed.text, 'water: 4, coffee: 2');
  assert.deepEqual(JSON.parse(listed.data), [{ name: 'coffee', value: 2 }, { name: 'water', value: 4 }]);
  assert.equal(tally.handle(req('reset coffee')).text, 'Reset coffee.');
  assert.equal(tally.handle(req('reset coffee')).text, 'There is no tally named coffee.');
  assert.equal(tally.handle(req('reset all')).text, 'Reset 1 tallies.');
  assert.equal(tally.handle(req('tallies')).text, 'No tallies yet.');
  assert.equal(tally.handle(req('tallies', 'other')).text, 'coffee: 1');
  assert.equal(new TextDecoder().decode(host.memory.data.get('session/other/tally/coffee')), '1');
});

test('report asks the model, and falls back to the totals without one', () => {
  let host = fakeHost({ llm: (messages) => `You like ${messages[1].content.split(':')[0]}.` });
  tally.handle(req('count 3 coffee'));
  const r = tally.handle(req('tally report'));
  assert.equal(r.text, 'coffee: 3. You like coffee.');
  assert.equal(JSON.parse(r.data).by, 'llm');
  assert.equal(host.llm.calls[0].options.profile, 'fast');

  host = fakeHost(); // no model
  tally.handle(req('count 3 coffee'));
  const f = tally.handle(req('tally report'));
  assert.equal(f.text, 'coffee: 3.');
  assert.equal(JSON.parse(f.data).by, 'totals');
  assert.match(host.logs[0][1], /not-configured/);
});

test('exports speak WIT: manifest, errors as variants', () => {
  fakeHost();
  const exported = exportAgent(tally);
  const m = exported.describe();
  assert.equal(m.name, 'tally-js');
  assert.match(m.name, /^[a-z0-9-]+$/);
  assert.ok(m.skills[0].keywords.includes('tally'));
  assert.deepEqual(m.capabilities.map((c) => c.name), ['memory', 'llm', 'log']);
  assert.throws(() => exported.handle(req('   ')), (e) => e.tag === 'invalid-request' && e.val === 'empty request');
  assert.throws(() => tally.handle(req('')), InvalidRequest);
});
