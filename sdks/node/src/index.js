// CMS business-metrics SDK for Node.js: see README.md.
export { ASSET_CLASSES, BatchRun, CmsClient, createClient, errorType, Feed, Stage } from './client.js';
export { parsePairs, resolveConfig } from './config.js';
export { retryAfterMs } from './exporter.js';
export { ManualClock, formatMillis, parseTime, systemClock, toNanos } from './time.js';
export { httpTransport, SDK_VERSION } from './transport.js';
