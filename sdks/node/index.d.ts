// Type definitions for the CMS business-metrics SDK (@cms/sdk).

/** Epoch nanoseconds as BigInt, a Date, an RFC 3339 UTC string, or epoch milliseconds. */
export type TimeInput = bigint | Date | string | number;
export type AttributeValue = string | number | boolean | bigint;
export type Attributes = Record<string, AttributeValue | null | undefined>;
export type AssetClass = 'equities' | 'fixed_income' | 'derivatives' | 'fx' | 'commodities';
export type StageType =
  | 'ingest' | 'validation' | 'enrichment' | 'transformation' | 'valuation'
  | 'aggregation' | 'loading' | 'publication' | 'reconciliation';

/** Sends one request body; resolves for any HTTP response, rejects when there is none. */
export type Transport = (json: string) => Promise<{ status: number; retryAfter?: string | null; body?: string }>;

export interface ClientOptions {
  /** Base URL; /v1/metrics is appended (OTEL_EXPORTER_OTLP_ENDPOINT). Default http://127.0.0.1:4318. */
  endpoint?: string;
  /** Full metrics URL used as is (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT). */
  metricsEndpoint?: string;
  /** Extra request headers (OTEL_EXPORTER_OTLP_HEADERS). */
  headers?: Record<string, string>;
  /** Shorthand for headers.authorization = `Bearer ${apiKey}`. */
  apiKey?: string;
  serviceName?: string;
  serviceVersion?: string;
  /** dev, staging, prod or demo (CMS_ENVIRONMENT); default the profile name, else dev. */
  environment?: string;
  resourceAttributes?: Record<string, string>;
  /** JSON config file with profiles (CMS_CONFIG_FILE). */
  configFile?: string;
  /** Profile of the config file (CMS_PROFILE). */
  profile?: string;
  timeoutMs?: number;
  compression?: 'gzip' | 'none';
  /** Spool directory, or 'off' (CMS_SPOOL_DIR). Default <tmp>/cms-sdk-spool/<service name>. */
  spoolDir?: string;
  spoolMaxBytes?: number;
  maxQueueSize?: number;
  maxBatchSize?: number;
  exportIntervalMs?: number;
  maxRetries?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Also export cms.app.sdk.* gauges about the SDK itself every 10 s. */
  selfMetrics?: boolean;
  /** Replaces process.env when resolving settings; pass {} to ignore the environment. */
  env?: Record<string, string | undefined>;
  /** Where the SDK reads the time (BigInt epoch ns), e.g. a ManualClock. */
  clock?: (() => bigint) | { now(): bigint };
  transport?: Transport;
  /** Receives the SDK's (rate-limited) warnings. Default console. */
  logger?: { warn(message: string): void };
  /** false: no background timer; points stay queued until flush(), shutdown() or drainToJson(). */
  backgroundExport?: boolean;
  /** false: no process beforeExit/exit hooks (then call shutdown() yourself). */
  exitHandler?: boolean;
  /** How the worker waits between retries (for tests). */
  sleep?: (ms: number) => Promise<void>;
}

export interface ResolvedConfig {
  metricsUrl: string;
  headers: Record<string, string>;
  serviceName: string;
  serviceVersion: string | null;
  environment: string;
  profile: string | null;
  resourceAttributes: Record<string, string>;
  timeoutMs: number;
  gzip: boolean;
  spoolDir: string | null;
  spoolMaxBytes: number;
  maxQueueSize: number;
  maxBatchSize: number;
  exportIntervalMs: number;
  maxRetries: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  selfMetrics: boolean;
}

export interface Stats {
  queueSize: number;
  queueCapacity: number;
  enqueued: number;
  /** Points dropped because the queue was full, the client closed, or the spool could not take them. */
  dropped: number;
  /** Calls ignored for a non-finite value, a negative count or a missing name. */
  invalid: number;
  exportedPoints: number;
  exportRequests: number;
  failedRequests: number;
  retries: number;
  /** Points the endpoint refused (non-retryable 4xx, partialSuccess, too large). */
  rejected: number;
  spooledFiles: number;
  spooledPoints: number;
  replayedFiles: number;
  spoolPending: number;
  lastExportLatencyMs: number;
  avgExportLatencyMs: number;
  maxExportLatencyMs: number;
  calls: number;
  avgCallOverheadUs: number;
  maxCallOverheadUs: number;
  lastError: string | null;
}

export interface RunOptions {
  assetClass: AssetClass | string;
  job: string;
  /** Default `<assetClass>.<job>.<start as YYYY-MM-DDTHH:MM:SS.mmmZ>`. */
  runId?: string;
  /** A string is sent as given; a Date as YYYY-MM-DDTHH:MM:SS.mmmZ. */
  scheduledStart?: string | Date;
}

export interface StageOptions {
  name: string;
  type?: StageType | string;
  /** Stage ids this stage waits for (cms.stage_depends_on). */
  dependsOn?: string[];
  /** Default: 1 + the highest attempt of this stage so far in the run. */
  attempt?: number;
}

export interface HeartbeatOptions {
  up: boolean;
  latencyMs?: number;
  stalenessS?: number;
  messages?: number | bigint;
  missingFields?: number | bigint;
  invalidValues?: number | bigint;
  /** The interval the counts cover, default 60. */
  intervalS?: number;
  time?: TimeInput;
}

export interface GaugeOptions {
  unit?: string;
  attributes?: Attributes;
  time?: TimeInput;
}

export interface CounterOptions extends GaugeOptions {
  startTime?: TimeInput;
}

export class Stage {
  readonly attempt: number;
  readonly ended: boolean;
  records(n: number | bigint): this;
  addRecords(n: number | bigint): this;
  finish(): void;
  /** fail('Timeout') or fail(error): ends the attempt as failed. */
  fail(error?: string | unknown): void;
  /** Ends the attempt successfully unless it has already ended. */
  close(): void;
}

export class BatchRun {
  readonly runId: string;
  readonly ended: boolean;
  records(n: number | bigint): this;
  addRecords(n: number | bigint): this;
  bytes(n: number | bigint): this;
  addBytes(n: number | bigint): this;
  startStage(options: StageOptions): Stage;
  /** Runs fn(stage) as a stage attempt: success when it resolves, failed (and re-thrown) when it throws. */
  stage<T>(options: StageOptions, fn: (stage: Stage) => T | Promise<T>): Promise<T>;
  stage(options: StageOptions): Stage;
  finish(): void;
  fail(error?: string | unknown): void;
  close(): void;
}

export class Feed {
  heartbeat(options: HeartbeatOptions): void;
}

export class CmsClient {
  constructor(options?: ClientOptions);
  static fromEnvironment(options?: ClientOptions): CmsClient;
  readonly config: ResolvedConfig;
  startRun(options: RunOptions): BatchRun;
  /** Runs fn(run) as a batch run: success when it resolves, failed with the error's type (re-thrown) when it throws. */
  run<T>(options: RunOptions, fn: (run: BatchRun) => T | Promise<T>): Promise<T>;
  feed(feedId: string, provider?: string): Feed;
  gauge(name: string, value: number, options?: GaugeOptions): void;
  counter(name: string, increment: number | bigint, options?: CounterOptions): void;
  /** Exports everything queued; resolves true when done within timeoutMs (default 10000). */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Flushes (default 5000 ms), stops the worker and spools what could not be delivered. */
  shutdown(timeoutMs?: number): Promise<void>;
  stats(): Stats;
  /** Removes every queued point and returns them as one OTLP/JSON request, without sending. */
  drainToJson(): string;
}

export function createClient(options?: ClientOptions): CmsClient;
export function errorType(err: unknown): string;
export const ASSET_CLASSES: AssetClass[];
export const SDK_VERSION: string;

export class ManualClock {
  constructor(start?: TimeInput);
  readonly now: () => bigint;
  set(t: TimeInput): void;
  advanceMs(ms: number): void;
}

export function systemClock(): () => bigint;
export function parseTime(text: string): bigint;
export function formatMillis(ns: bigint): string;
export function toNanos(t: TimeInput): bigint;
export function parsePairs(text: string | undefined, what: string): Record<string, string>;
export function resolveConfig(options?: ClientOptions): ResolvedConfig;
export function retryAfterMs(header: string | null | undefined): number;
export function httpTransport(url: string, headers: Record<string, string>, timeoutMs: number, gzip: boolean): Transport;
