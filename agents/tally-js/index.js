// Entry module of `tally-js`: the WIT interfaces it uses (exactly those of
// wit/world.wit, which is what the component imports) handed to the SDK,
// and the agent exported as `describe` and `handle`.
import * as log from 'agentkernel:agent/log@0.1.0';
import * as memory from 'agentkernel:agent/memory@0.1.0';
import * as llm from 'agentkernel:agent/llm@0.1.0';
import { use, exportAgent } from '../../sdk/js/agentkernel.js';
import { tally } from './tally.js';

use({ log, memory, llm });

export const { describe, handle } = exportAgent(tally);
