// Hostile guest `hostile-js`: `spin` loops forever, `grow` allocates
// without bound; anything else answers at once.
import * as log from 'agentkernel:agent/log@0.1.0';
import { use, exportAgent, Manifest, response, log as say } from '../../../sdk/js/agentkernel.js';

use({ log });

const hostile = {
  describe() {
    return new Manifest('hostile-js', '0.1.0', 'Hostile guest: spins or grows memory until the host stops it.')
      .capability('log', 'says what it is about to do');
  },
  handle(req) {
    const what = req.text.trim();
    if (what === 'spin') {
      say.warn('hostile-js: spinning');
      let n = 0;
      for (;;) n++;
    }
    if (what === 'grow') {
      say.warn('hostile-js: growing');
      const hoard = [];
      // Written, not just reserved: 1 MiB per step, all kept.
      for (;;) hoard.push(new Uint8Array(1 << 20).fill(hoard.length & 0xff));
    }
    return response(`hostile-js is here; say \`spin\` or \`grow\` (got ${JSON.stringify(what)})`);
  },
};

export const { describe, handle } = exportAgent(hostile);
