// Entry file of the primary's cluster children: a data-plane worker, or the
// privileged agent when the primary forked it with PALISADE_PROCESS_ROLE=agent.
import { runAgent } from './agent';
import { AGENT_ENV, AGENT_ENV_VALUE } from './messages';
import { runWorker } from './worker';

if (process.env[AGENT_ENV] === AGENT_ENV_VALUE) runAgent();
else runWorker();
