// Typed errors: one class per group of the WIT `error` variant, each with the variant's
// name as `code` and its payload as `detail`. Messages match the Rust host's.

export class EdgeSlmError extends Error {
  /** @param {string} code @param {string} message @param {unknown} [detail] */
  constructor(code, message, detail) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.detail = detail;
  }
}
/** The model file cannot be used: not found, not GGUF, corrupt, unsupported, unreadable. */
export class ModelLoadError extends EdgeSlmError {}
/** Prompt plus max-tokens exceed the context window; `detail` is {needed, limit}. */
export class ContextOverflowError extends EdgeSlmError {}
/** An option outside its domain (or an empty prompt). */
export class InvalidOptionError extends EdgeSlmError {}
/** A label set classify cannot use. */
export class InvalidLabelsError extends EdgeSlmError {}
/** A constraint that cannot be compiled: invalid or unsupported schema, bad regex or grammar. */
export class InvalidConstraintError extends EdgeSlmError {}
/** No output can satisfy the constraint. */
export class ConstraintUnsatisfiableError extends EdgeSlmError {}
/** max-tokens ran out before the constrained output was complete; `detail` is max-tokens. */
export class OutputTruncatedError extends EdgeSlmError {}
/** The component trapped: this model instance is gone; load the model again. */
export class InstanceTrappedError extends EdgeSlmError {}

const KINDS = {
  "file-not-found": [ModelLoadError, (v) => `file not found: ${v}`],
  "not-gguf": [ModelLoadError, (v) => `not a GGUF file: ${v}`],
  "unsupported-architecture": [ModelLoadError, (v) => `unsupported architecture: ${v}`],
  "unsupported-tensor-type": [ModelLoadError, (v) => v],
  "corrupt-file": [ModelLoadError, (v) => `corrupt or truncated model file: ${v}`],
  io: [ModelLoadError, (v) => `i/o error: ${v}`],
  "context-overflow": [
    ContextOverflowError,
    (v) => `context overflow: ${v.needed} tokens needed, the context holds ${v.limit}`,
  ],
  "invalid-option": [InvalidOptionError, (v) => `invalid option: ${v}`],
  "invalid-labels": [InvalidLabelsError, (v) => `invalid labels: ${v}`],
  "invalid-schema": [InvalidConstraintError, (v) => `invalid JSON schema: ${v}`],
  "unsupported-schema": [InvalidConstraintError, (v) => `unsupported JSON schema: ${v}`],
  "invalid-regex": [InvalidConstraintError, (v) => `invalid regex: ${v}`],
  "invalid-grammar": [InvalidConstraintError, (v) => `invalid grammar: ${v}`],
  "constraint-unsatisfiable": [ConstraintUnsatisfiableError, (v) => `constraint cannot be satisfied: ${v}`],
  "output-truncated": [
    OutputTruncatedError,
    (v) => `output truncated: max-tokens (${v}) reached before the constrained output was complete`,
  ],
};

/** The typed error for a WIT `error` value ({tag, val}). */
export function fromWit(err) {
  const kind = KINDS[err.tag];
  if (!kind) return new EdgeSlmError(err.tag, `${err.tag}: ${JSON.stringify(err.val)}`, err.val);
  const [Class, message] = kind;
  return new Class(err.tag, message(err.val), err.val);
}
