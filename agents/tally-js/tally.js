// `tally-js`: keeps named counters per session in `memory` and asks the
// `llm` to comment on them.
//
// - `count coffee` / `tally coffee` / `+1 coffee` / `coffee++`: adds one.
// - `count 3 pages`: adds three.
// - `tallies` / `show tallies`: lists this session's counters.
// - `reset coffee` / `reset tallies`: removes one counter, or all.
// - `tally report`: a one-sentence comment on the counters from the model
//   (profile `fast`); without a model, the plain totals.
import { Manifest, InvalidRequest, CapabilityError, response, memory, llm, log } from '../../sdk/js/agentkernel.js';

/** The most counters listed or reported. */
export const MAX_COUNTERS = 100;
const MAX_STEP = 1_000_000;

/** A counter's name as stored: lowercase words joined by `-`, at most 48 characters. */
export function counterName(text) {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
}

/** What a request asks for; pure, so it is unit-tested under node. */
export function parse(text) {
  const t = text.trim();
  const lower = t.toLowerCase();
  if (/\b(report|summar\w*)\b/.test(lower) && /\b(tall\w*|count\w*)\b/.test(lower)) return { kind: 'report' };
  if (/^(show |list |my )?(tallies|tally|counters|counts)[.!?]?$/.test(lower)) return { kind: 'list' };
  let m = lower.match(/^reset\s+(.+)$/);
  if (m) {
    return /^(all|everything|tallies|counters|all tallies|all counters)$/.test(m[1].trim())
      ? { kind: 'reset-all' }
      : named('reset', m[1]);
  }
  m = lower.match(/^(?:count|tally|add one to|\+1)\s+(.+)$/) ?? lower.match(/^(.+?)\s*\+\+$/);
  if (m) {
    const n = m[1].match(/^(\d+)\s+(.+)$/);
    if (n) {
      const step = Number(n[1]);
      if (step < 1 || step > MAX_STEP) return { kind: 'unknown' };
      return named('add', n[2], step);
    }
    return named('add', m[1], 1);
  }
  return { kind: 'unknown' };
}

function named(kind, text, step) {
  const name = counterName(text);
  if (!name) return { kind: 'unknown' };
  return step === undefined ? { kind, name } : { kind, name, step };
}

export const prefix = (session) => `session/${session}/tally/`;

/** The plain-text totals, largest first (ties by name). */
export function totalsText(counters) {
  if (counters.length === 0) return 'No tallies yet.';
  const sorted = [...counters].sort((a, b) => b.value - a.value || a.name.localeCompare(b.name));
  return sorted.map((c) => `${c.name}: ${c.value}`).join(', ');
}

function readCounters(session) {
  const p = prefix(session);
  return memory.listKeys(p, MAX_COUNTERS).map((key) => ({ name: key.slice(p.length), value: Number(memory.getString(key) ?? '0') }));
}

function report(counters) {
  const totals = totalsText(counters);
  if (counters.length === 0) return { text: totals, by: 'none' };
  try {
    const reply = llm.chat('fast', [
      llm.system('You comment on a person\'s tally counters in one short, friendly sentence. Mention the largest one.'),
      llm.user(totals),
    ], { maxTokens: 80, temperature: 0.3 });
    const comment = reply.content.trim();
    if (comment) return { text: `${totals}. ${comment}`, by: 'llm' };
  } catch (e) {
    // No model, budget spent, upstream down: the totals alone still answer.
    if (!(e instanceof CapabilityError)) throw e;
    log.warn(`tally report without the model: ${e.message}`);
  }
  return { text: `${totals}.`, by: 'totals' };
}

export const tally = {
  describe() {
    return new Manifest('tally-js', '0.1.0', 'Keeps named counters per session and reports on them (JavaScript).')
      .skill('tally', 'Count things: add to a named counter, list, reset or report the counters', ['tally', 'tallies', 'count', 'counter', 'increment'])
      .capability('memory', 'stores the counters of each session')
      .capability('llm', 'comments on the counters in a report')
      .capability('log', 'notes when a report goes without the model');
  },

  handle(req) {
    const cmd = parse(req.text);
    const p = prefix(req.sessionId);
    switch (cmd.kind) {
      case 'add': {
        // Atomic: concurrent calls each see their own total.
        const value = memory.increment(p + cmd.name, cmd.step);
        return response(`${cmd.name}: ${value}`, { name: cmd.name, value });
      }
      case 'list': {
        const counters = readCounters(req.sessionId);
        return response(totalsText(counters), counters);
      }
      case 'reset': {
        const existed = memory.delete(p + cmd.name);
        return response(existed ? `Reset ${cmd.name}.` : `There is no tally named ${cmd.name}.`);
      }
      case 'reset-all': {
        const keys = memory.listKeys(p, 10_000);
        for (const key of keys) memory.delete(key);
        return response(`Reset ${keys.length} tallies.`);
      }
      case 'report': {
        const counters = readCounters(req.sessionId);
        const { text, by } = report(counters);
        return response(text, { counters, by });
      }
      default:
        if (!req.text.trim()) throw new InvalidRequest('empty request');
        return response('Tell me `count <thing>` (or `count 3 <thing>`), ask for `tallies`, a `tally report`, or `reset <thing>`.');
    }
  },
};
