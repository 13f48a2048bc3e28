// The app's own fallback classifier: keyword rules that answer instantly while the model
// downloads. Crude on purpose; results are marked source: "heuristic".
const RULES = [
  ["billing", /\b(refund|charged?|invoice|billing|payment|paid|pay|subscription|price|card|receipt|vat)\b/i],
  ["incident", /\b(crash\w*|error|down|outage|broken|fail\w*|500|bug|not working|stopped|can't|cannot|timeout)\b/i],
];

export function heuristicClassify(text, labels) {
  const hit = RULES.find(([label, re]) => labels.includes(label) && re.test(text));
  const label = hit ? hit[0] : labels.includes("inquiry") ? "inquiry" : labels[0];
  return { label, confidence: null, scores: null, source: "heuristic" };
}
