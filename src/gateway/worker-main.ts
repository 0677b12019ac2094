// Entry file of a data-plane worker process (forked by the primary through node:cluster).
import { runWorker } from './worker';

runWorker();
