// Types of the EasyMemory client. Request and response shapes come from schema.d.ts, which is
// generated from the server's OpenAPI schema (scripts/generate-types.mjs).
import type {
  ApiKey,
  ApiKeyCreated,
  AuditEvent,
  EntityDetail,
  Entity,
  GraphExport,
  GraphPath,
  Hit,
  Job,
  Member,
  Memory,
  MemoryCreated,
  MemoryHistory,
  MemoryInput,
  MemoryKindEnum,
  Neighbors,
  OAuthApp,
  OAuthAppWithSecret,
  PatchedMemoryUpdate,
  Relation,
  RoleEnum,
  SearchResponse,
  Stats,
  Tenant,
} from "./schema.js";

export type * from "./schema.js";

export interface RetryOptions {
  /** Retries after the first attempt (default 3). */
  maxRetries?: number;
  /** First backoff in ms, doubled per attempt, plus jitter (default 500). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Upper bound on any wait, including one asked for by Retry-After (default 60000). */
  maxWaitMs?: number;
}

export interface ClientOptions {
  baseUrl?: string;
  apiKey?: string;
  /** OAuth2 client credentials: the token is fetched, renewed before expiry and once more on a 401. */
  clientId?: string;
  clientSecret?: string;
  scope?: string;
  timeoutMs?: number;
  retry?: RetryOptions;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
}

export type DateLike = string | Date;

/** One memory to add; only `content` is required. */
export type NewMemory = Omit<MemoryInput, "occurred_at" | "expires_at"> & {
  occurred_at?: DateLike | null;
  expires_at?: DateLike | null;
};

/** Filters for lists and search, combined with AND. */
export interface Filters {
  kind?: MemoryKindEnum[];
  /** any of these tags */
  tags?: string[];
  tags_all?: string[];
  user_ref?: string;
  agent_id?: string;
  session_id?: string;
  /** JSON containment on metadata */
  metadata?: Record<string, unknown>;
  occurred_after?: DateLike;
  occurred_before?: DateLike;
  created_after?: DateLike;
  created_before?: DateLike;
  include_expired?: boolean;
  include_ephemeral?: boolean;
  as_of?: DateLike;
}

export interface SearchOptions {
  k?: number;
  filters?: Filters;
  /** fusion weights per signal, e.g. { vector: 2, fulltext: 1, graph: 0.5 } */
  weights?: Record<string, number>;
  /** what was known at that moment */
  asOf?: DateLike;
}

export type EntityArg = number | string | { name: string; type?: string };

export declare class EasyMemoryError extends Error {}
export declare class TransportError extends EasyMemoryError {}
export declare class ApiError extends EasyMemoryError {
  readonly status: number;
  readonly detail: string;
  /** the input field the server named, when it named one */
  readonly field: string | null;
  readonly errors: unknown;
  readonly body: unknown;
  /** seconds the server asked to wait (429) */
  readonly retryAfter: number | null;
}
export declare class BadRequest extends ApiError {}
export declare class AuthenticationError extends ApiError {}
export declare class PermissionDenied extends ApiError {}
export declare class NotFound extends ApiError {}
export declare class RateLimited extends ApiError {}
export declare class ServerError extends ApiError {}
export declare class JobFailed extends EasyMemoryError {
  readonly job: Job;
}
export declare function retryAfterSeconds(value: string | null): number | null;

export declare class EasyMemory {
  constructor(options: ClientOptions);
  readonly baseUrl: string;
  readonly admin: Admin;
  /** the OAuth token state; `fetched` counts token requests */
  readonly token: { value: string; expiresAt: number; fetched: number };

  add(content: string, fields?: Omit<NewMemory, "content">): Promise<MemoryCreated>;
  /** A batch, all or nothing; items the memory policy skipped have `id: null` and `skipped`. */
  addMany(items: NewMemory[]): Promise<MemoryCreated[]>;
  get(memoryId: string): Promise<Memory>;
  update(memoryId: string, changes: PatchedMemoryUpdate): Promise<Memory>;
  delete(memoryId: string): Promise<void>;
  history(memoryId: string): Promise<MemoryHistory[]>;
  /** Every memory matching the filters, newest first, fetched page by page. */
  list(filters?: Filters, options?: { pageSize?: number }): AsyncIterable<Memory>;
  forgetUser(userRef: string): Promise<number>;
  search(query: string, options?: SearchOptions): Promise<SearchResponse>;
  stats(): Promise<Stats>;

  entities(options?: { q?: string; type?: string; pageSize?: number }): AsyncIterable<Entity>;
  entity(entityId: number): Promise<EntityDetail>;
  deleteEntity(entityId: number): Promise<void>;
  mergeEntities(target: number, sources: number[]): Promise<EntityDetail>;
  neighbors(entityId: number, options?: { depth?: number; asOf?: DateLike }): Promise<Neighbors>;
  path(from: number, to: number, options?: { maxDepth?: number; asOf?: DateLike }): Promise<GraphPath>;
  exportGraph(options?: { asOf?: DateLike }): Promise<GraphExport>;
  exportGraphml(options?: { asOf?: DateLike }): Promise<string>;
  addRelation(
    source: EntityArg,
    target: EntityArg,
    predicate: string,
    options?: { fact?: string; confidence?: number; validAt?: DateLike | null; invalidAt?: DateLike | null },
  ): Promise<Relation>;
  relation(relationId: number): Promise<Relation>;
  deleteRelation(relationId: number): Promise<void>;

  uploadFile(name: string, data: Blob | Uint8Array | string): Promise<Job>;
  importJson(name: string, data: Blob | Uint8Array | string): Promise<Job>;
  importSlack(name: string, data: Blob | Uint8Array): Promise<Job>;
  importMbox(name: string, data: Blob | Uint8Array | string): Promise<Job>;
  indexDirectory(path: string, options?: { pattern?: string; recursive?: boolean }): Promise<Job>;
  job(jobId: string): Promise<Job>;
  jobs(options?: { pageSize?: number }): AsyncIterable<Job>;
  waitForJob(
    job: Job | string,
    options?: { timeoutMs?: number; pollMs?: number; onProgress?: (job: Job) => void; raiseOnFailure?: boolean },
  ): Promise<Job>;
  /** Every memory of the tenant, streamed from the JSONL export. */
  export(): AsyncIterable<Record<string, unknown>>;
  auditEvents(filters?: Record<string, string>, options?: { pageSize?: number }): AsyncIterable<AuditEvent>;
}

export declare class Admin {
  apiKeys(): Promise<ApiKey[]>;
  /** A rate limit left null is the server's default (EASYMEMORY_RATE_LIMIT_PER_MIN / _BURST). */
  createApiKey(
    name: string,
    options?: { role?: RoleEnum; expiresAt?: DateLike | null; rateLimitPerMin?: number | null; rateLimitBurst?: number | null },
  ): Promise<ApiKeyCreated>;
  apiKey(id: string): Promise<ApiKey>;
  revokeApiKey(id: string): Promise<ApiKey>;
  oauthApps(): Promise<OAuthApp[]>;
  createOAuthApp(name: string, options?: { role?: RoleEnum }): Promise<OAuthAppWithSecret>;
  oauthApp(id: string): Promise<OAuthApp>;
  deleteOAuthApp(id: string): Promise<void>;
  rotateOAuthSecret(id: string): Promise<OAuthAppWithSecret>;
  members(): Promise<Member[]>;
  addMember(username: string, options?: { role?: RoleEnum }): Promise<Member>;
  member(id: string): Promise<Member>;
  setMemberRole(id: string, role: RoleEnum): Promise<Member>;
  removeMember(id: string): Promise<void>;
  tenants(): Promise<Tenant[]>;
  createTenant(name: string, options?: { slug?: string }): Promise<Tenant>;
  tenant(id: string): Promise<Tenant>;
  deleteTenant(id: string): Promise<void>;
}

export type { Hit };
