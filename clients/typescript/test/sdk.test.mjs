// The TypeScript/JavaScript SDK against a real EasyMemory server. The pytest suite starts the server
// and runs this file (tests/sdk/test_typescript_sdk.py); the URL and keys come from the environment.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthenticationError,
  BadRequest,
  EasyMemory,
  NotFound,
  PermissionDenied,
} from "../src/index.js";

const url = process.env.EASYMEMORY_URL;
const keys = JSON.parse(process.env.EASYMEMORY_TEST_KEYS || "{}");
const client = (persona, options = {}) =>
  new EasyMemory({ baseUrl: url, apiKey: keys[persona], timeoutMs: 180000, ...options });
// Wait until the worker has enriched a memory: deleting one while the worker is still extracting from
// it can fail on the server with an integrity error (a server race, reported separately).
const settled = async (em, id) => {
  const deadline = Date.now() + 180000;
  while ((await em.get(id)).enrichment_state === "pending" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
};
const collect = async (iterable) => {
  const out = [];
  for await (const item of iterable) out.push(item);
  return out;
};

test("memories: add, read, update with history, delete", async () => {
  const em = client("writer");
  const memory = await em.add("TS: the van is parked on level 3", { tags: ["car"], user_ref: "ts-ann" });
  assert.equal(memory.created, true);
  const again = await em.add("TS: the van is parked on level 3", { tags: ["car"], user_ref: "ts-ann" });
  assert.equal(again.id, memory.id);
  assert.equal(again.created, false);
  assert.deepEqual((await em.get(memory.id)).tags, ["car"]);
  const updated = await em.update(memory.id, { content: "TS: the van is parked on level 4" });
  assert.equal(updated.version, 2);
  const events = (await em.history(memory.id)).map((entry) => entry.event);
  assert.deepEqual(events.slice(0, 1), ["ADD"]);
  assert.ok(events.includes("UPDATE"));
  await settled(em, memory.id);
  await em.delete(memory.id);
  await assert.rejects(em.get(memory.id), NotFound);
});

test("a batch, pagination over every page, search with filters, forget a user", async () => {
  const em = client("writer");
  const items = [0, 1, 2, 3, 4].map((n) => ({ content: `TS batch fact ${n} about the greenhouse`, session_id: "ts-batch" }));
  const created = await em.addMany(items);
  assert.equal(created.length, 5);
  const listed = await collect(em.list({ session_id: "ts-batch" }, { pageSize: 2 }));
  assert.deepEqual(listed.map((m) => m.id).sort(), created.map((m) => m.id).sort());

  await em.add("TS: Bruno grows tomatoes in the greenhouse", { user_ref: "ts-bruno" });
  const result = await em.search("who grows tomatoes", { k: 5, filters: { user_ref: "ts-bruno" } });
  assert.ok(result.results.length >= 1);
  assert.ok(result.results.every((hit) => hit.memory.user_ref === "ts-bruno"));
  assert.ok(Object.keys(result.results[0].evidence).length > 0);
  const past = await em.search("tomatoes", { asOf: new Date("2000-01-01T00:00:00Z") });
  assert.equal(past.results.length, 0);

  assert.equal(await em.forgetUser("ts-bruno"), 1);
  assert.deepEqual(await collect(em.list({ user_ref: "ts-bruno" })), []);
  assert.ok((await em.stats()).memories >= 5);
});

test("errors carry the server's field, and each persona gets what its role allows", async () => {
  const writer = client("writer");
  const refused = await writer.add("x", { importance: 7 }).catch((e) => e);
  assert.ok(refused instanceof BadRequest);
  assert.equal(refused.status, 400);
  assert.equal(refused.field, "importance");
  const unknown = await writer.add("x", { colour: "blue" }).catch((e) => e);
  assert.equal(unknown.field, "colour");
  await assert.rejects(new EasyMemory({ baseUrl: url, apiKey: "emk_nope" }).stats(), AuthenticationError);

  const mine = await writer.add("TS: the alarm code changes on Mondays", { session_id: "ts-access" });
  const reader = client("reader");
  assert.equal((await reader.get(mine.id)).id, mine.id);
  await assert.rejects(reader.add("readers cannot write"), PermissionDenied);
  await assert.rejects(reader.delete(mine.id), PermissionDenied);
  assert.equal((await client("admin").get(mine.id)).id, mine.id);
  const outsider = client("outsider");
  await assert.rejects(outsider.get(mine.id), NotFound);
  assert.deepEqual(await collect(outsider.list({ session_id: "ts-access" })), []);
  await assert.rejects(writer.admin.apiKeys(), PermissionDenied);
});

test("graph: relations by name, entities, neighbours, paths, export", async () => {
  const em = client("writer");
  const works = await em.addRelation("TS Grace", "TS Navy Lab", "works_at", { fact: "Grace works at the lab" });
  const lives = await em.addRelation(works.source.id, "TS Arlington", "lives_in");
  assert.equal(works.source.name, "TS Grace");
  assert.equal((await em.relation(works.id)).fact, "Grace works at the lab");
  const found = await collect(em.entities({ q: "ts grace", pageSize: 1 }));
  assert.deepEqual(found.map((e) => e.name), ["TS Grace"]);
  const detail = await em.entity(works.source.id);
  assert.deepEqual(detail.relations.current.map((r) => r.id).sort(), [works.id, lives.id].sort());
  const around = await em.neighbors(works.source.id, { depth: 1 });
  assert.ok(around.nodes.some((node) => node.name === "TS Arlington"));
  const route = await em.path(works.target.id, lives.target.id);
  assert.equal(route.length, 2);
  assert.ok((await em.exportGraph()).edges.length >= 2);
  assert.match(await em.exportGraphml(), /<graphml/);
  await em.deleteRelation(lives.id);
  assert.equal((await em.relation(lives.id)).current, false);
});

test("an upload becomes a job the wait helper follows; the export streams it back", async () => {
  const em = client("writer");
  const job = await em.uploadFile("ts-notes.md", "# Ferry\n\nThe TS ferry to Capraia leaves at 08:30.\n");
  assert.equal(job.kind, "file");
  const seen = [];
  const finished = await em.waitForJob(job, { timeoutMs: 240000, pollMs: 300, onProgress: (j) => seen.push(j.status) });
  assert.equal(finished.status, "done");
  assert.equal(seen.at(-1), "done");
  assert.ok((await collect(em.jobs({ pageSize: 1 }))).some((j) => j.id === job.id));
  const exported = await collect(em.export());
  assert.ok(exported.some((line) => String(line.content).includes("Capraia")));
  const empty = await em.uploadFile("empty.md", "").catch((e) => e);
  assert.equal(empty.field, "file");
});

test("OAuth client credentials: a token is fetched once, and again after it is revoked", async () => {
  const app = await client("admin").admin.createOAuthApp("ts-app", { role: "writer" });
  const em = new EasyMemory({ baseUrl: url, clientId: app.client_id, clientSecret: app.client_secret });
  await em.add("TS: written with an OAuth token", { session_id: "ts-oauth" });
  assert.equal((await collect(em.list({ session_id: "ts-oauth" }))).length, 1);
  assert.equal(em.token.fetched, 1);
  const revoked = await fetch(`${url}/oauth/revoke`, {
    method: "POST",
    body: new URLSearchParams({ token: em.token.value, client_id: app.client_id, client_secret: app.client_secret }),
  });
  assert.equal(revoked.status, 200);
  assert.equal((await collect(em.list({ session_id: "ts-oauth" }))).length, 1);
  assert.equal(em.token.fetched, 2);
});

test("a rate-limited call waits as Retry-After says, then succeeds", async () => {
  // A small limit of its own: the bucket runs out however slowly the server answers.
  const created = await client("admin").admin.createApiKey("ts-burst", {
    role: "reader", rateLimitPerMin: 60, rateLimitBurst: 5,
  });
  assert.equal(created.rate_limit_burst, 5);
  const waits = [];
  const asked = [];
  const sleep = (ms) => {
    waits.push(ms);
    return new Promise((resolve) => setTimeout(resolve, ms));
  };
  // Record what the server asked for on each 429, as the client saw it.
  const recording = async (...args) => {
    const response = await fetch(...args);
    if (response.status === 429) asked.push(Number(response.headers.get("retry-after")));
    return response;
  };
  const em = new EasyMemory({
    baseUrl: url, apiKey: created.secret, sleep, fetch: recording, retry: { maxRetries: 6, backoffMs: 50 },
  });
  // Spend the key's burst allowance through the client itself: every call must still succeed.
  for (let i = 0; i < 50 && waits.length === 0; i += 1) {
    assert.deepEqual(await collect(em.list({ session_id: "nothing-here" }, { pageSize: 1 })), []);
  }
  assert.ok(asked.length > 0 && asked.every((seconds) => seconds > 0));
  assert.ok(waits.length > 0);
  assert.ok(waits[0] >= Math.min(asked[0] * 1000, 60000));
});
