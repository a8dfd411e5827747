// `{name}`: an agentkernel agent in JavaScript.
//
// It answers every message with what it heard and how many messages this
// session has sent it (a counter in `memory`).
//
// Test:   node --test         (agent.test.js, with fakes of the host)
// Deploy: agentkernel build . (rolldown + componentize-js, then into the agents directory)
import { Manifest, InvalidRequest, response, memory, log } from './sdk/agentkernel.js';

export const AGENT = '{name}';
export const VERSION = '0.1.0';

/** Where the message count of `session` is kept in `memory`. */
export const counterKey = (session) => `session/${session}/messages`;

/** The reply to the `count`-th message of a session; pure, so agent.test.js covers it. */
export function answer(text, count) {
  return `${AGENT} heard: ${text.trim()} (message ${count} of this session)`;
}

export const agent = {
  describe() {
    return new Manifest(AGENT, VERSION, 'Describe what {name} does.')
      .skill('{name}', 'What requests this agent is good at', ['{name}'])
      .capability('memory', 'counts the messages of each session')
      .capability('log', 'notes each message it answers');
  },

  handle(req) {
    if (!req.text.trim()) throw new InvalidRequest('empty request');
    // Atomic: concurrent calls each get their own number.
    const count = memory.increment(counterKey(req.sessionId));
    log.info(`message ${count} of session ${req.sessionId}`);
    return response(answer(req.text, count), { count });
  },
};
