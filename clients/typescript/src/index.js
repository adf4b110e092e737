// EasyMemory client: fetch-based (Node 18+ and browsers), no dependencies.
// Types: index.d.ts (API) and schema.d.ts (generated from the server's OpenAPI schema).

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
const RETRY_STATUSES = new Set([429, 502, 503, 504]);

export class EasyMemoryError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The server could not be reached (after the configured retries). */
export class TransportError extends EasyMemoryError {}

/** The server answered with an error; `field` names the offending input field when it names one. */
export class ApiError extends EasyMemoryError {
  constructor(status, message, { field = null, errors = null, body = null, retryAfter = null } = {}) {
    super(`HTTP ${status}: ${message}${field ? ` (field: ${field})` : ""}`);
    this.status = status;
    this.detail = message;
    this.field = field;
    this.errors = errors;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}
export class BadRequest extends ApiError {}
export class AuthenticationError extends ApiError {}
export class PermissionDenied extends ApiError {}
export class NotFound extends ApiError {}
export class RateLimited extends ApiError {}
export class ServerError extends ApiError {}

export class JobFailed extends EasyMemoryError {
  constructor(job) {
    super(`job ${job.id} failed: ${job.error || "no reason given"}`);
    this.job = job;
  }
}

function errorFor(status, body, retryAfter) {
  let message = `HTTP ${status}`;
  let field = null;
  let errors = null;
  if (body && typeof body === "object") {
    message = String(body.error || body.detail || body.error_description || message);
    field = typeof body.field === "string" ? body.field : null;
    errors = body.errors ?? null;
  } else if (typeof body === "string" && body) {
    message = body.slice(0, 300);
  }
  const Cls =
    status === 401 ? AuthenticationError
    : status === 403 ? PermissionDenied
    : status === 404 ? NotFound
    : status === 429 ? RateLimited
    : status >= 500 ? ServerError
    : BadRequest;
  return new Cls(status, message, { field, errors, body, retryAfter });
}

/** Seconds from a Retry-After header (seconds or HTTP date), or null. */
export function retryAfterSeconds(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (!Number.isNaN(seconds)) return Math.max(0, seconds);
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, raw] of Object.entries(params || {})) {
    if (raw === undefined || raw === null || raw === "") continue;
    let value = raw;
    if (Array.isArray(value)) value = value.join(",");
    else if (value instanceof Date) value = value.toISOString();
    else if (typeof value === "object") value = JSON.stringify(value);
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function jsonable(value) {
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(jsonable);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = jsonable(v);
    return out;
  }
  return value;
}

function nextParams(nextUrl) {
  if (!nextUrl) return null;
  const url = new URL(nextUrl, "http://placeholder");
  return Object.fromEntries(url.searchParams.entries());
}

async function readBody(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const sleeper = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class EasyMemory {
  /**
   * @param {import("./index.js").ClientOptions} options
   */
  constructor(options = {}) {
    const { baseUrl = "http://127.0.0.1:8100", apiKey, clientId, clientSecret, scope } = options;
    if (!apiKey && !(clientId && clientSecret)) throw new Error("give apiKey, or clientId and clientSecret");
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.clientId = clientId;
    this.clientSecret = clientSecret;
    this.scope = scope;
    this.timeoutMs = options.timeoutMs ?? 30000;
    this.retry = { maxRetries: 3, backoffMs: 500, maxBackoffMs: 20000, maxWaitMs: 60000, ...(options.retry || {}) };
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.sleep = options.sleep ?? sleeper;
    this.token = { value: "", expiresAt: 0, fetched: 0 };
    this.tokenPromise = null;
    this.admin = new Admin(this);
  }

  // --- plumbing ------------------------------------------------------------------------------
  delay(attempt, retryAfter) {
    const { backoffMs, maxBackoffMs, maxWaitMs } = this.retry;
    let ms = Math.min(maxBackoffMs, backoffMs * 2 ** attempt) + Math.random() * backoffMs;
    if (retryAfter !== null && retryAfter !== undefined) ms = Math.max(ms, retryAfter * 1000);
    return Math.min(ms, maxWaitMs);
  }

  async fetchToken() {
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: this.clientId,
      client_secret: this.clientSecret,
    });
    if (this.scope) form.set("scope", this.scope);
    const response = await this.send("POST", "/oauth/token", { form, auth: false });
    const body = await readBody(response);
    if (!response.ok) throw errorFor(response.status, body, null);
    this.token = {
      value: body.access_token,
      expiresAt: Date.now() + (Number(body.expires_in) || 3600) * 1000,
      fetched: this.token.fetched + 1,
    };
    return this.token.value;
  }

  async authorization() {
    if (this.apiKey) return `Bearer ${this.apiKey}`;
    if (!this.token.value || Date.now() > this.token.expiresAt - 30000) {
      // One fetch shared by concurrent calls.
      this.tokenPromise ??= this.fetchToken().finally(() => {
        this.tokenPromise = null;
      });
      await this.tokenPromise;
    }
    return `Bearer ${this.token.value}`;
  }

  async send(method, path, { json, form, params, auth = true } = {}) {
    let attempt = 0;
    let refreshed = false;
    for (;;) {
      const headers = { "User-Agent": "easymemory-client-js/0.1.0" };
      if (auth) headers.Authorization = await this.authorization();
      let body;
      if (json !== undefined) {
        headers["Content-Type"] = "application/json";
        body = JSON.stringify(jsonable(json));
      } else if (form !== undefined) {
        body = form; // URLSearchParams or FormData: fetch sets the content type
      }
      let response;
      try {
        response = await this.fetch(this.baseUrl + path + query(params), {
          method,
          headers,
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (error) {
        // fetch rejects before any answer: a POST may be retried only if nothing was sent, which
        // fetch cannot tell us, so only idempotent methods are retried here.
        if (attempt >= this.retry.maxRetries || !IDEMPOTENT.has(method)) {
          throw new TransportError(`${method} ${path}: ${error?.message ?? error}`);
        }
        await this.sleep(this.delay(attempt, null));
        attempt += 1;
        continue;
      }
      if (response.status === 401 && auth && !this.apiKey && !refreshed) {
        await response.body?.cancel();
        this.token = { value: "", expiresAt: 0, fetched: this.token.fetched };
        refreshed = true;
        continue;
      }
      const retryable = response.status === 429 || (RETRY_STATUSES.has(response.status) && IDEMPOTENT.has(method));
      if (retryable && attempt < this.retry.maxRetries) {
        const wait = retryAfterSeconds(response.headers.get("retry-after"));
        await response.body?.cancel();
        await this.sleep(this.delay(attempt, wait));
        attempt += 1;
        continue;
      }
      return response;
    }
  }

  async request(method, path, options = {}) {
    const response = await this.send(method, path, options);
    if (response.status === 204) return null;
    const body = await readBody(response);
    if (!response.ok) {
      throw errorFor(response.status, body, retryAfterSeconds(response.headers.get("retry-after")));
    }
    return body;
  }

  async *pages(path, params) {
    let current = { ...params };
    for (;;) {
      const page = await this.request("GET", path, { params: current });
      yield* page.results;
      const following = nextParams(page.next);
      if (!following) return;
      current = { ...current, ...following };
    }
  }

  // --- memories ------------------------------------------------------------------------------
  add(content, fields = {}) {
    return this.request("POST", "/v1/memories", { json: { ...fields, content } });
  }

  addMany(items) {
    return this.request("POST", "/v1/memories", { json: items });
  }

  get(memoryId) {
    return this.request("GET", `/v1/memories/${encodeURIComponent(memoryId)}`);
  }

  update(memoryId, changes) {
    return this.request("PATCH", `/v1/memories/${encodeURIComponent(memoryId)}`, { json: changes });
  }

  async delete(memoryId) {
    await this.request("DELETE", `/v1/memories/${encodeURIComponent(memoryId)}`);
  }

  async history(memoryId) {
    return (await this.request("GET", `/v1/memories/${encodeURIComponent(memoryId)}/history`)).results;
  }

  list(filters = {}, { pageSize = 100 } = {}) {
    return this.pages("/v1/memories", { ...filters, limit: pageSize });
  }

  async forgetUser(userRef) {
    return (await this.request("DELETE", "/v1/memories", { params: { user_ref: userRef } })).deleted;
  }

  search(queryText, { k = 10, filters = {}, weights = {}, asOf } = {}) {
    const merged = asOf === undefined ? filters : { ...filters, as_of: asOf };
    return this.request("POST", "/v1/search", { json: { query: queryText, k, filters: merged, weights } });
  }

  stats() {
    return this.request("GET", "/v1/stats");
  }

  // --- graph ---------------------------------------------------------------------------------
  entities({ q, type, pageSize = 100 } = {}) {
    return this.pages("/v1/entities", { q, type, limit: pageSize });
  }

  entity(entityId) {
    return this.request("GET", `/v1/entities/${entityId}`);
  }

  async deleteEntity(entityId) {
    await this.request("DELETE", `/v1/entities/${entityId}`);
  }

  mergeEntities(target, sources) {
    return this.request("POST", "/v1/entities/merge", { json: { target, sources } });
  }

  neighbors(entityId, { depth = 1, asOf } = {}) {
    return this.request("GET", `/v1/entities/${entityId}/neighbors`, { params: { depth, as_of: asOf } });
  }

  path(from, to, { maxDepth = 4, asOf } = {}) {
    return this.request("GET", "/v1/graph/path", { params: { from, to, max_depth: maxDepth, as_of: asOf } });
  }

  exportGraph({ asOf } = {}) {
    return this.request("GET", "/v1/graph/export", { params: { format: "json", as_of: asOf } });
  }

  async exportGraphml({ asOf } = {}) {
    const response = await this.send("GET", "/v1/graph/export", { params: { format: "graphml", as_of: asOf } });
    if (!response.ok) throw errorFor(response.status, await readBody(response), null);
    return response.text();
  }

  addRelation(source, target, predicate, { fact = "", confidence = 1, validAt = null, invalidAt = null } = {}) {
    const ref = (value) => (typeof value === "string" && !/^\d+$/.test(value) ? { name: value } : value);
    return this.request("POST", "/v1/relations", {
      json: {
        source: ref(source),
        target: ref(target),
        predicate,
        fact,
        confidence,
        valid_at: validAt,
        invalid_at: invalidAt,
      },
    });
  }

  relation(relationId) {
    return this.request("GET", `/v1/relations/${relationId}`);
  }

  async deleteRelation(relationId) {
    await this.request("DELETE", `/v1/relations/${relationId}`);
  }

  // --- imports, jobs, export -------------------------------------------------------------------
  upload(path, name, data) {
    const form = new FormData();
    const blob = data instanceof Blob ? data : new Blob([data]);
    form.set("file", blob, name);
    return this.request("POST", path, { form });
  }

  /** Import a document (markdown, text, PDF, DOCX, ...). */
  uploadFile(name, data) {
    return this.upload("/v1/files", name, data);
  }

  importJson(name, data) {
    return this.upload("/v1/import", name, data);
  }

  importSlack(name, data) {
    return this.upload("/v1/integrations/slack/import", name, data);
  }

  importMbox(name, data) {
    return this.upload("/v1/integrations/mbox/import", name, data);
  }

  indexDirectory(path, { pattern = "*.md", recursive = true } = {}) {
    return this.request("POST", "/v1/index", { json: { path, pattern, recursive } });
  }

  job(jobId) {
    return this.request("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
  }

  jobs({ pageSize = 50 } = {}) {
    return this.pages("/v1/jobs", { limit: pageSize });
  }

  async waitForJob(job, { timeoutMs = 600000, pollMs = 500, onProgress, raiseOnFailure = true } = {}) {
    const jobId = typeof job === "string" ? job : job.id;
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      const current = await this.job(jobId);
      const state = `${current.status}:${current.done}:${current.skipped}:${current.failed}`;
      if (onProgress && state !== last) onProgress(current);
      last = state;
      if (current.status === "done" || current.status === "failed") {
        if (current.status === "failed" && raiseOnFailure) throw new JobFailed(current);
        return current;
      }
      if (Date.now() > deadline) throw new Error(`job ${jobId} still ${current.status} after ${timeoutMs} ms`);
      await this.sleep(pollMs);
    }
  }

  /** Every memory of the tenant as JSON objects, streamed from the JSONL export. */
  async *export() {
    const response = await this.send("GET", "/v1/export");
    if (!response.ok) throw errorFor(response.status, await readBody(response), null);
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) yield JSON.parse(line);
      }
    }
    if (buffer.trim()) yield JSON.parse(buffer);
  }

  /** Audit events (admin role), newest first. */
  async *auditEvents(filters = {}, { pageSize = 100 } = {}) {
    const params = { ...filters, limit: pageSize };
    for (;;) {
      const page = await this.request("GET", "/v1/audit", { params });
      yield* page.results;
      if (!page.next_cursor) return;
      params.cursor = page.next_cursor;
    }
  }
}

/** The admin API (/v1/admin/…): API keys, OAuth apps, members; tenants for a superuser. */
export class Admin {
  constructor(client) {
    this.client = client;
  }
  #do(method, path, json) {
    return this.client.request(method, `/v1/admin/${path}`, json === undefined ? {} : { json });
  }
  apiKeys() { return this.#do("GET", "api-keys"); }
  createApiKey(name, { role = "writer", expiresAt = null, rateLimitPerMin = null, rateLimitBurst = null } = {}) {
    return this.#do("POST", "api-keys", {
      name, role, expires_at: expiresAt, rate_limit_per_min: rateLimitPerMin, rate_limit_burst: rateLimitBurst,
    });
  }
  apiKey(id) { return this.#do("GET", `api-keys/${id}`); }
  revokeApiKey(id) { return this.#do("DELETE", `api-keys/${id}`); }
  oauthApps() { return this.#do("GET", "oauth-apps"); }
  createOAuthApp(name, { role = "reader" } = {}) { return this.#do("POST", "oauth-apps", { name, role }); }
  oauthApp(id) { return this.#do("GET", `oauth-apps/${id}`); }
  deleteOAuthApp(id) { return this.#do("DELETE", `oauth-apps/${id}`); }
  rotateOAuthSecret(id) { return this.#do("POST", `oauth-apps/${id}/rotate-secret`); }
  members() { return this.#do("GET", "members"); }
  addMember(username, { role = "reader" } = {}) { return this.#do("POST", "members", { username, role }); }
  member(id) { return this.#do("GET", `members/${id}`); }
  setMemberRole(id, role) { return this.#do("PATCH", `members/${id}`, { role }); }
  removeMember(id) { return this.#do("DELETE", `members/${id}`); }
  tenants() { return this.#do("GET", "tenants"); }
  createTenant(name, { slug = "" } = {}) { return this.#do("POST", "tenants", { name, slug }); }
  tenant(id) { return this.#do("GET", `tenants/${id}`); }
  deleteTenant(id) { return this.#do("DELETE", `tenants/${id}`); }
}
