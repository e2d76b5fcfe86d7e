// Type declarations of the jobq package (libjobq for Node).
import { EventEmitter } from 'node:events';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type EventType =
  | 'submitted' | 'started' | 'progress' | 'retrying' | 'succeeded' | 'failed' | 'cancelled'
  | 'storage_error' | 'storage_ok' | 'batch_done' | 'webhook_failed';

/** JSON values: payloads and results. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface OpenOptions {
  /** "memory:" (default) or "sqlite:PATH". */
  storage?: string;
  /** Worker threads of the library itself (for C handlers; process() does not need them). */
  workers?: number;
  /** Lease of a claimed job in ms (100 ms .. 1 day). */
  lease?: number;
  /** Events kept for events()/waits; also buffers them from the open on. */
  eventBuffer?: number;
  /** Hear other processes' events from the open on ("sqlite:" only). */
  sharedEvents?: boolean;
  maxPayload?: number;
  defaultDuration?: number;
  workdir?: string;
  /** The binding's threads for short calls (submit, get, list, cancel). Default 2. */
  threads?: number;
}

export interface SubmitOptions {
  owner?: string;
  /** -1000..1000, higher first. */
  priority?: number;
  /** Not before now + delay ms. */
  delay?: number;
  /** Not before this time (ms since the epoch). */
  runAt?: number;
  maxAttempts?: number;
  /** A dedupe key: while a job with it is live, submit returns that job. */
  dedupe?: string;
  /** How long a succeeded job keeps the key, ms (0: only while unfinished). */
  dedupeTtl?: number;
  force?: boolean;
}

export interface AttemptLogEntry {
  startedAt: number;
  finishedAt?: number;
  error?: string;
}

/** A snapshot of a job (jobq_job_to_json). */
export interface JobInfo {
  id: string;
  kind: string;
  state: JobState;
  payload: Json;
  owner?: string;
  priority: number;
  progress: number;
  step?: string;
  result?: Json;
  error?: string;
  attempts: number;
  maxAttempts: number;
  cancelRequested?: boolean;
  createdAt: number;
  runAt: number;
  startedAt?: number;
  finishedAt?: number;
  position?: number;
  etaMs?: number;
  attemptLog?: AttemptLogEntry[];
}

/** An event (jobq_event_to_json) and how many were dropped before it. */
export interface JobEvent {
  type: EventType;
  jobId?: string;
  kind?: string;
  state?: JobState;
  progress?: number;
  step?: string;
  attempt?: number;
  error?: string;
  result?: Json;
  batchId?: string;
  deliveryId?: string;
  code?: string;
  time?: number;
  dropped: number;
  [key: string]: unknown;
}

export interface ListFilter {
  owner?: string;
  kind?: string;
  state?: JobState | number;
  /** Jobs per page, 1..1000. */
  limit?: number;
  newestFirst?: boolean;
}

export interface WaitOptions {
  /** ms; then the wait rejects with TimedOutError. */
  timeout?: number;
  signal?: AbortSignal;
}

export interface ProcessOptions {
  /** Handlers running at once. Default 1. */
  concurrency?: number;
  /** Most jobs per claim (1..1024). Default 256. */
  batch?: number;
}

export interface Processor {
  /** Claims nothing more; resolves once the running handlers have returned. */
  stop(): Promise<void>;
}

/** One attempt of one job, handed to a process() handler. */
export class Job {
  readonly id: string;
  readonly kind: string;
  readonly payload: Json;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** True once the job was cancelled or its attempt timed out. */
  readonly cancelled: boolean;
  progress(percent: number, step?: string): void;
  /** Finish a job from q.claim(): the result (JSON). */
  succeed(result?: unknown): void;
  /** Fail the attempt ("Name: message"); retried while attempts remain unless retryable is false. */
  fail(error: unknown, opts?: { retryable?: boolean }): void;
  /** Queue the job again after `after` ms. */
  retry(after?: number, opts?: { countAttempt?: boolean }): void;
}

export type Handler = (job: Job) => unknown | Promise<unknown>;

export class JobqError extends Error {
  /** The code's name, e.g. "JOBQ_ENOTFOUND". */
  code: string;
  /** The code, e.g. -3. */
  errno: number;
}
export class ClosedError extends JobqError {}
export class TimedOutError extends JobqError {}
export class NotFoundError extends JobqError {}
export class InvalidArgumentError extends JobqError {}
/** Every code's class by name: errors.KindError, errors.StateError, ... */
export const errors: { readonly [name: string]: typeof JobqError };

/** Thrown by a handler: queue the job again after `after` ms. */
export class RetryError extends Error {
  constructor(after?: number, opts?: { countAttempt?: boolean; message?: string });
  after: number;
  countAttempt: boolean;
}
export function retry(after?: number, opts?: { countAttempt?: boolean; message?: string }): RetryError;

export const version: string;
export const libraryPath: string;
export const states: JobState[];
export const eventTypes: EventType[];

export class Queue extends EventEmitter {
  static open(options?: OpenOptions): Promise<Queue>;
  readonly closed: boolean;
  submit(kind: string, payload?: unknown, opts?: SubmitOptions): Promise<string>;
  submitEx(kind: string, payload?: unknown, opts?: SubmitOptions): Promise<{ id: string; duplicate: boolean }>;
  submitMany(jobs: { kind: string; payload?: unknown; opts?: SubmitOptions }[]): Promise<string[]>;
  get(id: string): Promise<JobInfo>;
  /** Claims up to max due jobs (one storage claim); [] after timeout ms. */
  claim(kind: string | string[] | null, opts?: { max?: number; timeout?: number }): Promise<Job[]>;
  cancel(id: string): Promise<void>;
  pages(filter?: ListFilter): AsyncGenerator<JobInfo[], void, unknown>;
  list(filter?: ListFilter): AsyncGenerator<JobInfo, void, unknown>;
  /** Resolves with the job once it has finished. */
  wait(id: string, opts?: WaitOptions): Promise<JobInfo>;
  events(): AsyncIterableIterator<JobEvent>;
  process(kind: string | string[] | null, handler: Handler, opts?: ProcessOptions): Processor;
  close(drainMs?: number): Promise<void>;

  on(event: EventType | 'event', listener: (ev: JobEvent) => void): this;
  on(event: 'processError', listener: (err: Error) => void): this;
  once(event: EventType | 'event', listener: (ev: JobEvent) => void): this;
  once(event: 'processError', listener: (err: Error) => void): this;
  off(event: string, listener: (...args: any[]) => void): this;
}

export default Queue;
