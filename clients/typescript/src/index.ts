// A dependency-free client for af-builder's dispatch, shaped like
// service-cloud-api's in-process build spawner, so swapping the spawner for
// dispatch changes one import:
//
//   import { spawnBuildJob, cancelBuildJob } from "./af-dispatch";
//   const { k8sJobName, initialLog } = await spawnBuildJob({ buildJobId, installationId, ... });
//
// Every request is signed with dispatch's X-AF-Signature scheme
// (HMAC-SHA256 over timestamp, method, target and body with the shared
// API_AUTH_SECRET). Runs on Node 18+ and in any runtime with fetch and
// WebCrypto.

/** What service-cloud-api's spawner takes. Commands are plain text (any
 * line breaks, up to 4096 characters); installationId may be a number, a
 * bigint or a numeric string. */
export interface SpawnBuildJobInput {
  buildJobId: string;
  installationId: number | bigint | string;
  repoOwner: string;
  repoName: string;
  commitSha: string;
  imageTag: string;
  rootDirectory?: string | null;
  buildCommand?: string | null;
  startCommand?: string | null;
  callbackBaseUrl?: string | null;
  /** Optional: group the build with the service's push builds, so a later push supersedes it. */
  serviceId?: string | null;
  branch?: string | null;
}

/** What service-cloud-api's spawner returns, plus dispatch's own fields. */
export interface SpawnBuildJobResult {
  k8sJobName: string;
  dryRun: boolean;
  executor: string;
  initialLog: string;
  buildJobId: string;
  jobName: string;
  namespace: string;
  log: string;
  /** Set on a repeat whose Job is gone: nothing was created; the last known state. */
  state?: string;
  replayed?: boolean;
}

export interface CancelBuildJobResult {
  buildJobId: string;
  state: string;
  /** Whether dispatch's CANCELED callback reached the platform. */
  callback?: "sent" | "failed";
}

export interface DispatchClientOptions {
  /** dispatch's base URL, e.g. http://af-dispatch.af-builds.svc:8080 */
  baseUrl: string;
  /** API_AUTH_SECRET, shared with dispatch (at least 32 bytes). */
  secret: string;
  /** Per request, default 15000. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** Clock in milliseconds, for tests. */
  now?: () => number;
}

/** A refused or failed request: status is dispatch's HTTP status (400
 * invalid, 401 unauthorized, 409 id reused for another request, 422 no
 * access to the repository, 502/504 could not start). */
export class DispatchError extends Error {
  readonly status: number;
  readonly body: unknown;
  readonly fields: string[];
  constructor(status: number, body: unknown) {
    const b = (body ?? {}) as { error?: unknown; fields?: unknown };
    super(`dispatch answered ${status}: ${typeof b.error === "string" ? b.error : "no details"}`);
    this.name = "DispatchError";
    this.status = status;
    this.body = body;
    this.fields = Array.isArray(b.fields) ? b.fields.map(String) : [];
  }
}

export interface DispatchClient {
  spawnBuildJob(input: SpawnBuildJobInput): Promise<SpawnBuildJobResult>;
  cancelBuildJob(buildJobId: string, opts?: { callbackBaseUrl?: string }): Promise<CancelBuildJobResult>;
}

export function createDispatchClient(opts: DispatchClientOptions): DispatchClient {
  const base = opts.baseUrl.replace(/\/+$/, "");
  const doFetch = opts.fetch ?? globalThis.fetch;
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.timeoutMs ?? 15000;

  async function call(method: string, target: string, body: string): Promise<unknown> {
    const ts = Math.floor(now() / 1000).toString();
    const sig = await hmacHex(opts.secret, `${ts}\n${method}\n${target}\n${body}`);
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const resp = await doFetch(base + target, {
        method,
        headers: {
          "Content-Type": "application/json",
          "X-AF-Timestamp": ts,
          "X-AF-Signature": "sha256=" + sig,
        },
        body: method === "GET" || method === "DELETE" ? undefined : body,
        signal: ctl.signal,
        redirect: "error",
      });
      const text = await resp.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : {};
      } catch {
        // Not JSON (a proxy's error page): keep the text.
      }
      if (!resp.ok) throw new DispatchError(resp.status, parsed);
      return parsed;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async spawnBuildJob(input) {
      const body = JSON.stringify(requestBody(input));
      return (await call("POST", "/v1/builds", body)) as SpawnBuildJobResult;
    },
    async cancelBuildJob(buildJobId, o) {
      let target = "/v1/builds/" + encodeURIComponent(buildJobId);
      if (o?.callbackBaseUrl) target += "?callbackBaseUrl=" + encodeURIComponent(o.callbackBaseUrl);
      return (await call("DELETE", target, "")) as CancelBuildJobResult;
    },
  };
}

function requestBody(input: SpawnBuildJobInput): Record<string, unknown> {
  const out: Record<string, unknown> = {
    buildJobId: input.buildJobId,
    // JSON has no bigint; dispatch takes a numeric string as well.
    installationId: typeof input.installationId === "bigint" ? input.installationId.toString() : input.installationId,
    repoOwner: input.repoOwner,
    repoName: input.repoName,
    commitSha: input.commitSha,
    imageTag: input.imageTag,
  };
  for (const k of ["rootDirectory", "buildCommand", "startCommand", "callbackBaseUrl", "serviceId", "branch"] as const) {
    const v = input[k];
    if (v !== undefined && v !== null && v !== "") out[k] = v;
  }
  return out;
}

async function hmacHex(secret: string, message: string): Promise<string> {
  const subtle = await webCrypto();
  const enc = new TextEncoder();
  const key = await subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await subtle.sign("HMAC", key, enc.encode(message)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function webCrypto(): Promise<SubtleCrypto> {
  if (globalThis.crypto?.subtle) return globalThis.crypto.subtle;
  // Node 18 has WebCrypto, but not as a global.
  const specifier = "node:crypto";
  const mod = (await import(specifier)) as { webcrypto: { subtle: SubtleCrypto } };
  return mod.webcrypto.subtle;
}

let defaultClient: DispatchClient | undefined;

/** Configures the client spawnBuildJob and cancelBuildJob use. Without it,
 * they read AF_DISPATCH_URL and AF_DISPATCH_API_SECRET from the environment. */
export function configureDispatch(opts: DispatchClientOptions): void {
  defaultClient = createDispatchClient(opts);
}

function client(): DispatchClient {
  if (defaultClient) return defaultClient;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  const baseUrl = env.AF_DISPATCH_URL;
  const secret = env.AF_DISPATCH_API_SECRET;
  if (!baseUrl || !secret) {
    throw new Error("dispatch client: call configureDispatch() or set AF_DISPATCH_URL and AF_DISPATCH_API_SECRET");
  }
  defaultClient = createDispatchClient({ baseUrl, secret });
  return defaultClient;
}

/** Starts a build (or finds it: a repeat of the same request creates nothing). */
export function spawnBuildJob(input: SpawnBuildJobInput): Promise<SpawnBuildJobResult> {
  return client().spawnBuildJob(input);
}

/** Cancels a build: dispatch reports CANCELED, then deletes its Job. */
export function cancelBuildJob(buildJobId: string, opts?: { callbackBaseUrl?: string }): Promise<CancelBuildJobResult> {
  return client().cancelBuildJob(buildJobId, opts);
}
