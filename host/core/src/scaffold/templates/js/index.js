// Entry module of `{name}`: the WIT interfaces it uses (exactly those of
// wit/world.wit, which is what the component imports) handed to the helper
// layer, and the agent exported as `describe` and `handle`. The logic is in
// agent.js, which node can test without a host.
import * as log from 'agentkernel:agent/log@0.1.0';
import * as memory from 'agentkernel:agent/memory@0.1.0';
import { use, exportAgent } from './sdk/agentkernel.js';
import { agent } from './agent.js';

use({ log, memory });

export const { describe, handle } = exportAgent(agent);
