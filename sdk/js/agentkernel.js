// agentkernel: write agentkernel agents in JavaScript (built with
// @bytecodealliance/componentize-js). See README.md beside this file.
//
// The agent's logic imports this module only; its entry module imports the
// WIT interfaces it uses, hands them to `use`, and exports the agent:
//
//   import * as log from 'agentkernel:agent/log@0.1.0';
//   import * as memory from 'agentkernel:agent/memory@0.1.0';
//   import { use, exportAgent } from '.../sdk/js/agentkernel.js';
//   import { greeter } from './greeter.js';
//   use({ log, memory });
//   export const { describe, handle } = exportAgent(greeter);
//
// so a component imports exactly the interfaces its entry names (the host
// checks them against policy), and tests can `use` fakes (testing.js).

/** Why an agent could not answer; `kind` is the WIT case. */
export class AgentError extends Error {
  constructor(message, kind = 'failed') {
    super(message);
    this.name = new.target.name;
    this.kind = kind;
  }
}
export class InvalidRequest extends AgentError {
  constructor(message) { super(message, 'invalid-request'); }
}
export class CapabilityFailed extends AgentError {
  constructor(message) { super(message, 'capability-failed'); }
}
export class Failed extends AgentError {
  constructor(message) { super(message, 'failed'); }
}

/** A capability call that failed; `code` is the WIT case (`quota-exceeded`, `not-configured`, ...). */
export class CapabilityError extends CapabilityFailed {
  constructor(capability, code, detail = '') {
    super(detail ? `${capability}: ${code}: ${detail}` : `${capability}: ${code}`);
    this.capability = capability;
    this.code = code;
    this.detail = detail;
  }
}

/** What `describe` returns; chain `.skill(...)` and `.capability(...)`. */
export class Manifest {
  constructor(name, version, description) {
    this.name = name;
    this.version = version;
    this.description = description;
    this.skills = [];
    this.capabilities = [];
  }
  /** A skill the router matches requests against (name, description, keywords). */
  skill(name, description, keywords = []) {
    this.skills.push({ name, description, keywords: [...keywords] });
    return this;
  }
  /** A capability the agent imports and why (shown to operators). */
  capability(name, reason) {
    this.capabilities.push({ name, reason });
    return this;
  }
}

/** An answer: text for a person, and optional structured data (any JSON value). */
export function response(text, data) {
  return { text, data: data === undefined ? undefined : JSON.stringify(data) };
}

// The WIT import modules the entry module handed over.
const wit = {};

/** Installs the WIT interfaces (or fakes): `{ log, memory, llm }`, any subset. */
export function use(bindings) {
  Object.assign(wit, bindings);
}

function raw(capability) {
  const m = wit[capability];
  if (!m) {
    throw new Failed(`${capability} is not available: import 'agentkernel:agent/${capability}@0.1.0' in the entry module and pass it to use()`);
  }
  return m;
}

// A WIT `result` error arrives as a thrown value carrying the variant
// (`{ tag, val }`), as such or as its `payload`.
function guard(capability, fn) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AgentError) throw e;
    const v = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
    if (v && typeof v === 'object' && typeof v.tag === 'string') {
      throw new CapabilityError(capability, v.tag, v.val === undefined ? '' : String(v.val));
    }
    throw e;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (v) => (typeof v === 'string' ? encoder.encode(v) : v);
const optBytes = (v) => (v === undefined || v === null ? undefined : bytes(v));

/** Logging into the host's log, tagged with the agent's name. */
export const log = {
  write(level, message) { raw('log').write(level, String(message)); },
  trace(message) { log.write('trace', message); },
  debug(message) { log.write('debug', message); },
  info(message) { log.write('info', message); },
  warn(message) { log.write('warn', message); },
  error(message) { log.write('error', message); },
};

/**
 * Persistent key-value memory and per-session history, in the agent's
 * namespace. Values are bytes (`Uint8Array`; strings are stored as UTF-8).
 * Update values that depend on what is stored with `increment`,
 * `compareAndSwap` or `batch`, never `get` then `set`. Failures throw a
 * `CapabilityError` (capability `memory`).
 */
export const memory = {
  get(key) { return guard('memory', () => raw('memory').get(key)); },
  getString(key) {
    const v = memory.get(key);
    return v === undefined ? undefined : decoder.decode(v);
  },
  set(key, value) { guard('memory', () => raw('memory').set(key, bytes(value))); },
  delete(key) { return guard('memory', () => raw('memory').delete(key)); },
  listKeys(prefix, limit = 1000) { return guard('memory', () => raw('memory').listKeys(prefix, limit)); },
  /** If `key` holds `expected` (undefined: absent) sets it to `next` (undefined: deletes); true if it did. */
  compareAndSwap(key, expected, next) {
    return guard('memory', () => raw('memory').compareAndSwap(key, optBytes(expected), optBytes(next)));
  },
  /** Atomically adds `delta` (absent counts as 0); the new value, as a Number. */
  increment(key, delta = 1) {
    return Number(guard('memory', () => raw('memory').increment(key, BigInt(delta))));
  },
  /** All or nothing: `['set', key, value]`, `['delete', key]`, `['expect', key, valueOrUndefined]`. */
  batch(ops) {
    const steps = ops.map(([kind, key, value]) => {
      if (kind === 'set') return { tag: 'set', val: [key, bytes(value)] };
      if (kind === 'delete') return { tag: 'delete', val: key };
      if (kind === 'expect') return { tag: 'expect', val: [key, optBytes(value)] };
      throw new TypeError(`unknown batch step ${kind}`);
    });
    guard('memory', () => raw('memory').batch(steps));
  },
  /** Appends `{ role, content }` (role: system, user, assistant or agent). */
  appendHistory(sessionId, turn) {
    guard('memory', () => raw('memory').appendHistory(sessionId, { role: turn.role, content: turn.content }));
  },
  history(sessionId, limit = 50) { return guard('memory', () => raw('memory').history(sessionId, limit)); },
};

/**
 * Chat completions through the host, by model profile (`fast`, `smart`,
 * `code`). Without a model every call throws a `CapabilityError` with
 * code `not-configured`: catch it and degrade.
 */
export const llm = {
  system: (content) => ({ role: 'system', content }),
  user: (content) => ({ role: 'user', content }),
  assistant: (content) => ({ role: 'assistant', content }),
  toolResult: (toolCallId, content) => ({ role: 'tool', content, toolCallId }),
  /**
   * `messages`: `{ role, content }` objects or strings (user turns).
   * `options`: `{ temperature, maxTokens, json, tools: [{ name, description, parameters }] }`.
   * Returns `{ content, toolCalls, finishReason, model, usage }`.
   */
  chat(profile, messages, options = {}) {
    const wire = messages.map((m) => (typeof m === 'string' ? llm.user(m) : m)).map((m) => ({
      role: m.role,
      content: m.content,
      toolCallId: m.toolCallId,
      toolCalls: m.toolCalls ?? [],
    }));
    const opts = {
      profile,
      temperature: options.temperature,
      maxTokens: options.maxTokens,
      responseFormat: options.json ? 'json-object' : 'text',
      tools: (options.tools ?? []).map((t) => ({
        name: t.name,
        description: t.description,
        parametersSchema: JSON.stringify(t.parameters ?? { type: 'object', properties: {} }),
      })),
    };
    return guard('llm', () => raw('llm').chat(wire, opts));
  },
};

/**
 * The component's exports for `agent`, an object with `describe()`
 * (returning a `Manifest`) and `handle(request)` (returning a `response`,
 * or a string, or throwing an `AgentError`; any other exception answers
 * `failed` with its message).
 */
export function exportAgent(agent) {
  return {
    describe() {
      const m = agent.describe();
      return {
        name: m.name,
        version: m.version,
        description: m.description,
        skills: m.skills.map((s) => ({ name: s.name, description: s.description, keywords: [...s.keywords] })),
        capabilities: m.capabilities.map((c) => ({ name: c.name, reason: c.reason })),
      };
    },
    handle(req) {
      let answer;
      try {
        answer = agent.handle(req);
      } catch (e) {
        const kind = e instanceof AgentError ? e.kind : 'failed';
        const message = e instanceof AgentError ? e.message : `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
        // The thrown value becomes the WIT error (`result::err`).
        throw { tag: kind, val: message };
      }
      if (typeof answer === 'string') answer = response(answer);
      return { text: answer.text, data: answer.data };
    },
  };
}
