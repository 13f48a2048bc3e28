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
/** Peak resident set of this process in MB (Node reports KB). */
export const peakRssMb = () => process.resourceUsage().maxRSS / 1024;
