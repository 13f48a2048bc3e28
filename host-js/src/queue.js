// A job queue whose concurrency and pacing follow the device's state: on battery and low,
// slow down; under serious or critical compute pressure, hold non-urgent jobs. The state
// comes from injectable sources, so tests (and apps) can drive it.

/**
 * The default policy: what the queue may do given the device state.
 * @param {{battery?: {level: number, charging: boolean}, pressure?: "nominal"|"fair"|"serious"|"critical"}} s
 * @returns {{concurrency: number, delayMs: number, pauseNonUrgent: boolean, reason: string}}
 */
export function throttlePolicy(s) {
  const pressure = s.pressure ?? "nominal";
  if (pressure === "critical") return { concurrency: 1, delayMs: 1000, pauseNonUrgent: true, reason: "compute pressure critical" };
  if (pressure === "serious") return { concurrency: 1, delayMs: 250, pauseNonUrgent: true, reason: "compute pressure serious" };
  const b = s.battery;
  if (b && !b.charging && b.level <= 0.2) return { concurrency: 1, delayMs: 500, pauseNonUrgent: false, reason: "battery low and discharging" };
  if (b && !b.charging && b.level <= 0.5) return { concurrency: 1, delayMs: 100, pauseNonUrgent: false, reason: "on battery" };
  return { concurrency: 2, delayMs: 0, pauseNonUrgent: false, reason: "normal" };
}

/**
 * Battery Status API as a source: calls `onChange({level, charging})` now and on every change.
 * Resolves to an unsubscribe function; where the API is missing it reports nothing.
 */
export async function batterySource(onChange, nav = globalThis.navigator) {
  if (!nav?.getBattery) return () => {};
  const battery = await nav.getBattery();
  const emit = () => onChange({ level: battery.level, charging: battery.charging });
  battery.addEventListener("levelchange", emit);
  battery.addEventListener("chargingchange", emit);
  emit();
  return () => {
    battery.removeEventListener("levelchange", emit);
    battery.removeEventListener("chargingchange", emit);
  };
}

/** Compute Pressure API (PressureObserver on "cpu") as a source of "nominal".."critical". */
export async function pressureSource(onChange, Observer = globalThis.PressureObserver) {
  if (!Observer) return () => {};
  const observer = new Observer((records) => onChange(records[records.length - 1].state));
  try {
    await observer.observe("cpu");
  } catch {
    return () => {};
  }
  return () => observer.disconnect();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class JobQueue {
  #jobs = [];
  #running = 0;
  #state = {};
  #policy;
  #unsubscribe = [];
  #lastStart = 0;

  /**
   * @param {object} [options]
   * @param {(state: object) => {concurrency: number, delayMs: number, pauseNonUrgent: boolean}} [options.policy]
   * @param {Array<(onChange: (v: any) => void) => (() => void) | Promise<() => void>>} [options.sources]
   *   functions that report device state; defaults: battery and compute pressure
   */
  constructor({ policy = throttlePolicy, sources } = {}) {
    this.#policy = policy;
    const wire = sources ?? [
      (emit) => batterySource((battery) => emit({ battery })),
      (emit) => pressureSource((pressure) => emit({ pressure })),
    ];
    for (const source of wire) {
      Promise.resolve(source((patch) => this.update(patch))).then((u) => this.#unsubscribe.push(u), () => {});
    }
  }

  /** Merge new device state (e.g. `{battery: {level, charging}}` or `{pressure: "serious"}`). */
  update(patch) {
    this.#state = { ...this.#state, ...patch };
    this.#pump();
  }

  /** The policy's current decision. */
  get limits() {
    return this.#policy(this.#state);
  }

  get pending() {
    return this.#jobs.length;
  }

  get running() {
    return this.#running;
  }

  /**
   * Queue `fn` (sync or async). Urgent jobs run first and are never paused by pressure.
   * @returns {Promise<any>} its result
   */
  add(fn, { urgent = false } = {}) {
    return new Promise((resolve, reject) => {
      const job = { fn, urgent, resolve, reject };
      if (urgent) {
        const i = this.#jobs.findIndex((j) => !j.urgent);
        this.#jobs.splice(i < 0 ? this.#jobs.length : i, 0, job);
      } else this.#jobs.push(job);
      this.#pump();
    });
  }

  close() {
    for (const u of this.#unsubscribe) u?.();
    this.#unsubscribe = [];
  }

  #pump() {
    const { concurrency, delayMs, pauseNonUrgent } = this.limits;
    while (this.#running < concurrency) {
      const i = pauseNonUrgent ? this.#jobs.findIndex((j) => j.urgent) : this.#jobs.length ? 0 : -1;
      if (i < 0) return;
      const [job] = this.#jobs.splice(i, 1);
      this.#running++;
      const wait = Math.max(0, this.#lastStart + delayMs - Date.now());
      this.#lastStart = Date.now() + wait;
      (async () => {
        if (wait) await sleep(wait);
        try {
          job.resolve(await job.fn());
        } catch (e) {
          job.reject(e);
        } finally {
          this.#running--;
          this.#pump();
        }
      })();
    }
  }
}
