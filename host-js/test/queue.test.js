// The throttling job queue, driven by injected battery and compute-pressure sources.
import assert from "node:assert/strict";
import { test } from "node:test";
import { JobQueue, throttlePolicy } from "../src/queue.js";

const tick = () => new Promise((r) => setTimeout(r, 5));

test("the policy slows down on a low battery and pauses non-urgent work under pressure", () => {
  assert.equal(throttlePolicy({}).concurrency, 2);
  assert.equal(throttlePolicy({ battery: { level: 0.9, charging: false } }).delayMs, 0);
  assert.ok(throttlePolicy({ battery: { level: 0.1, charging: false } }).delayMs >= 500);
  assert.equal(throttlePolicy({ battery: { level: 0.1, charging: true } }).delayMs, 0);
  assert.equal(throttlePolicy({ pressure: "serious" }).pauseNonUrgent, true);
  assert.equal(throttlePolicy({ pressure: "critical" }).pauseNonUrgent, true);
  assert.equal(throttlePolicy({ pressure: "fair" }).pauseNonUrgent, false);
});

test("pressure holds non-urgent jobs, urgent ones still run, and relief resumes the rest", async () => {
  let setPressure;
  const q = new JobQueue({ sources: [(emit) => { setPressure = (p) => emit({ pressure: p }); return () => {}; }] });
  await tick();
  setPressure("critical");
  const ran = [];
  const background = q.add(() => ran.push("background"));
  const urgent = q.add(() => ran.push("urgent"), { urgent: true });
  await urgent;
  await tick();
  assert.deepEqual(ran, ["urgent"]);
  assert.equal(q.pending, 1);
  setPressure("nominal");
  await background;
  assert.deepEqual(ran, ["urgent", "background"]);
  q.close();
});

test("a low, discharging battery spaces jobs out and limits concurrency to one", async () => {
  const q = new JobQueue({ sources: [(emit) => { emit({ battery: { level: 0.1, charging: false } }); return () => {}; }] });
  await tick();
  assert.equal(q.limits.concurrency, 1);
  let concurrent = 0, peak = 0;
  const starts = [];
  const job = async () => {
    starts.push(Date.now());
    peak = Math.max(peak, ++concurrent);
    await tick();
    concurrent--;
  };
  await Promise.all([q.add(job), q.add(job), q.add(job)]);
  assert.equal(peak, 1);
  assert.ok(starts[2] - starts[0] >= 2 * q.limits.delayMs - 20, `spaced: ${starts.map((s) => s - starts[0])}`);
  q.update({ battery: { level: 0.1, charging: true } });
  assert.equal(q.limits.concurrency, 2);
  q.close();
});

test("job errors reach the caller and the queue goes on", async () => {
  const q = new JobQueue({ sources: [] });
  await assert.rejects(q.add(() => { throw new Error("boom"); }), /boom/);
  assert.equal(await q.add(() => 42), 42);
});
