#!/usr/bin/env node
// Runs a built agent component (any language) under node, without the
// host: jco transpiles it, the SDK's fakes (testing.js) stand in for
// `log`, `memory` and `llm`, WASI comes from jco's preview2-shim. A smoke
// test of the component itself: its bindings, exports and capability calls.
//
//   source scripts/env.sh; source scripts/deps/polyglot.sh
//   node sdk/js/run-component.mjs [--llm TEXT] [--session ID] COMPONENT.wasm TEXT...
//
// Prints one JSON line for `describe`, one per TEXT (`ok` or `err`), then
// the memory's keys and values and the log lines. `--llm TEXT`: the model
// answers TEXT; without it the model is `not-configured`. The calls share
// one instance (the host makes a fresh one per call), so memory carries.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FakeLlm, FakeMemory } from './testing.js';

// componentize-py's components use extended constant expressions, which
// node before 22 runs only behind a flag: run again with it.
const FLAG = '--experimental-wasm-extended-const';
if (Number(process.versions.node.split('.')[0]) < 22 && !process.execArgv.includes(FLAG)) {
  const { status } = spawnSync(process.execPath, [...process.execArgv, FLAG, ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(status ?? 1);
}

const args = process.argv.slice(2);
let llmText;
let session = 'smoke';
while (args[0]?.startsWith('--')) {
  const flag = args.shift();
  if (flag === '--llm') llmText = args.shift();
  else if (flag === '--session') session = args.shift();
  else throw new Error(`unknown flag ${flag}`);
}
const [component, ...texts] = args;
const jsDir = process.env.AGENTKERNEL_POLYGLOT_JS_DIR;
const jco = process.env.AGENTKERNEL_JCO;
if (!component || !jsDir || !jco) {
  console.error('usage: node run-component.mjs [--llm TEXT] [--session ID] COMPONENT.wasm TEXT...');
  console.error('(needs AGENTKERNEL_POLYGLOT_JS_DIR and AGENTKERNEL_JCO: source scripts/deps/polyglot.sh)');
  process.exit(2);
}

// Under the npm prefix, so the transpiled module finds @bytecodealliance/preview2-shim.
mkdirSync(join(jsDir, 'run'), { recursive: true });
writeFileSync(join(jsDir, 'run', 'package.json'), '{"type":"module"}\n');
const out = mkdtempSync(join(jsDir, 'run', 'c-'));
try {
  const name = basename(component, '.wasm').replace(/[^A-Za-z0-9_]/g, '_');
  execFileSync(jco, ['transpile', component, '-o', out, '--name', name, '--quiet', '--map', 'agentkernel:agent/*=./host.js#*'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  // Every capability import forwards to the fakes installed below.
  writeFileSync(join(out, 'host.js'), `
const forward = (iface) => new Proxy({}, { get: (_, fn) => (...a) => globalThis.__agentkernelFakes[iface][fn](...a) });
export const log = forward('log'), memory = forward('memory'), llm = forward('llm'), types = {};
`);
  const fakes = {
    memory: new FakeMemory(),
    llm: new FakeLlm(llmText === undefined ? undefined : () => llmText),
    logs: [],
  };
  fakes.log = { write: (level, message) => fakes.logs.push([level, message]) };
  globalThis.__agentkernelFakes = fakes;

  const agent = await import(pathToFileURL(join(out, `${name}.js`)).href);
  console.log(JSON.stringify({ describe: agent.describe() }));
  for (const text of texts) {
    try {
      const ok = agent.handle({ sessionId: session, text, history: [], context: undefined });
      console.log(JSON.stringify({ text, ok }));
    } catch (e) {
      if (!e || !('payload' in e)) throw e;
      console.log(JSON.stringify({ text, err: e.payload }));
    }
  }
  const memory = Object.fromEntries([...fakes.memory.data].map(([k, v]) => [k, new TextDecoder().decode(v)]));
  console.log(JSON.stringify({ memory, history: Object.fromEntries(fakes.memory.histories), logs: fakes.logs }));
} finally {
  rmSync(out, { recursive: true, force: true });
}
