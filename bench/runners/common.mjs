// Shared by the JS runners: arguments, the spec, peak RSS, timing.
import { readFileSync } from "node:fs";

export function args() {
  const a = process.argv.slice(2);
  const flag = (name, dflt) => {
    const i = a.indexOf(name);
    return i >= 0 ? a[i + 1] : dflt;
  };
  const model = flag("--model");
  const spec = flag("--spec");
  if (!model || !spec) throw new Error("usage: --model FILE --spec SPEC.json [--threads N]");
  return { model, spec: JSON.parse(readFileSync(spec, "utf8")), threads: Number(flag("--threads", "1")) };
}

export const now = () => performance.now();
export const seedPrompt = (prefix, m) => `${prefix}Message: ${m}\nTicket:`;
/**
 * Peak resident set of this process in MB (10^6 bytes, the unit the report compares with
 * the model file's size): VmHWM, the high-water mark of this process's own memory.
 * (Not getrusage's maxRSS: Linux carries that across fork+exec, so a child would report its
 * parent's peak.)
 */
export function peakRssMb() {
  try {
    const line = readFileSync("/proc/self/status", "utf8").split("\n").find((l) => l.startsWith("VmHWM:"));
    return (Number(line.split(/\s+/)[1]) * 1024) / 1e6;
  } catch {
    return (process.resourceUsage().maxRSS * 1024) / 1e6;
  }
}
