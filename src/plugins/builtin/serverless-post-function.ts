// serverless-post-function: serverless-pre-function's functions, run late
// (priority -2000) in their phase. See serverless-pre-function.ts for the
// function shape and the `serverless.enabled` switch (applied by the loader).

import { serverlessPlugin } from './serverless-pre-function';

export default serverlessPlugin('serverless-post-function', -2000);
